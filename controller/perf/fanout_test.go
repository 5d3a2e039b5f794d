package perf

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// statusJSON is the part of `guests status -o json` the benchmark checks.
type statusJSON struct {
	Guests []struct {
		Name  string `json:"name"`
		Agent struct {
			Reachable bool `json:"reachable"`
		} `json:"agent"`
	} `json:"guests"`
}

// runStatus runs `kvmnetctl -c uri guests status -o json --timeout t` once and returns its wall
// time and how many guests were reachable.
func runStatus(b *testing.B, ctl, uri string, timeout time.Duration, n int) (time.Duration, int) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*timeout+30*time.Second)
	defer cancel()
	start := time.Now()
	out, code := run(ctx, ctl, "-c", uri, "--timeout", timeout.String(), "-o", "json", "guests", "status")
	el := time.Since(start)
	if code != 0 && code != 1 {
		b.Fatalf("kvmnetctl guests status: exit %d\n%s", code, out)
	}
	// stderr (summary line) is mixed in: the JSON document is the first '{' to the last '}'.
	var s statusJSON
	if i, j := strings.Index(out, "{"), strings.LastIndex(out, "}"); i < 0 || j < i || json.Unmarshal([]byte(out[i:j+1]), &s) != nil {
		b.Fatalf("guests status output is not JSON:\n%s", out)
	}
	if len(s.Guests) != n {
		b.Fatalf("guests status listed %d guests, want %d", len(s.Guests), n)
	}
	ok := 0
	for _, g := range s.Guests {
		if g.Agent.Reachable {
			ok++
		}
	}
	return el, ok
}

// BenchmarkStatusFanout measures `kvmnetctl guests status` (the built binary, a new process each
// time: libvirt test driver enumeration, one gRPC session per guest over the emulated virtio-serial
// channel with the resync handshake, GetState + RunChecks, diagnose, JSON rendering) over N running
// guests. Metrics: ms/status (wall time of one run), ms/guest, reachable guests.
func BenchmarkStatusFanout(b *testing.B) {
	ctl := binary(b, "KVMNETCTL", "kvmnetctl")
	for _, n := range []int{1, 10, 50, 100, 200} {
		b.Run("guests="+strconv.Itoa(n), func(b *testing.B) {
			uri, _ := fleet(b, n, -1)
			runStatus(b, ctl, uri, 10*time.Second, n) // warm the page cache and the agents
			b.ResetTimer()
			var total time.Duration
			reach := 0
			for range b.N {
				el, ok := runStatus(b, ctl, uri, 10*time.Second, n)
				total += el
				reach = ok
			}
			ms := float64(total.Microseconds()) / 1e3 / float64(b.N)
			b.ReportMetric(ms, "ms/status")
			b.ReportMetric(ms/float64(n), "ms/guest")
			b.ReportMetric(float64(reach), "reachable")
			if reach != n {
				b.Errorf("%d of %d guests reachable", reach, n)
			}
		})
	}
}

// BenchmarkStatusHungGuest: 50 guests, one of which never answers GetState, with --timeout 3s.
// The run must cost at most the timeout (plus enumeration and start-up): metric ms/status next to
// timeout-ms.
func BenchmarkStatusHungGuest(b *testing.B) {
	ctl := binary(b, "KVMNETCTL", "kvmnetctl")
	const n, timeout = 50, 3 * time.Second
	uri, _ := fleet(b, n, 17)
	b.ResetTimer()
	var total time.Duration
	reach := 0
	for range b.N {
		el, ok := runStatus(b, ctl, uri, timeout, n)
		total += el
		reach = ok
	}
	b.ReportMetric(float64(total.Microseconds())/1e3/float64(b.N), "ms/status")
	b.ReportMetric(float64(timeout.Milliseconds()), "timeout-ms")
	b.ReportMetric(float64(reach), "reachable")
	if reach != n-1 {
		b.Errorf("%d of %d guests reachable, want all but the hung one", reach, n)
	}
}

// BenchmarkVirshBaseline measures what a user scripts today to learn each guest's address: per
// guest one `virsh domifaddr --source lease VM` and one `virsh net-dhcp-leases NET`, run one after
// the other as subprocesses against the same test:/// node. libvirt's test driver implements
// neither lease call, so each invocation fails fast with "not supported": the numbers are a lower
// bound of the baseline's cost (a real libvirtd adds a daemon round trip and the lease file read),
// and the baseline yields no guest-side facts at all. Metrics: ms/status, ms/guest, failed calls.
func BenchmarkVirshBaseline(b *testing.B) {
	for _, n := range []int{1, 10, 50, 100, 200} {
		b.Run("guests="+strconv.Itoa(n), func(b *testing.B) {
			uri, names := fleet(b, n, -1)
			var total time.Duration
			failed := 0
			var samples []string
			for range b.N {
				failed = 0
				start := time.Now()
				for _, name := range names {
					for _, argv := range [][]string{
						{"virsh", "-c", uri, "domifaddr", "--source", "lease", name},
						{"virsh", "-c", uri, "net-dhcp-leases", "default"},
					} {
						out, code := run(context.Background(), argv...)
						if code != 0 {
							failed++
						}
						if len(samples) < 2 && !strings.Contains(strings.Join(samples, ""), argv[3]) {
							samples = append(samples, fmt.Sprintf("%s: exit %d: %q", strings.Join(argv[3:], " "), code, strings.TrimSpace(out)))
						}
					}
				}
				total += time.Since(start)
			}
			ms := float64(total.Microseconds()) / 1e3 / float64(b.N)
			b.ReportMetric(ms, "ms/status")
			b.ReportMetric(ms/float64(n), "ms/guest")
			b.ReportMetric(float64(failed), "failed-calls")
			for _, smp := range samples {
				b.Logf("virsh on the test driver: %s", smp)
			}
		})
	}
}
