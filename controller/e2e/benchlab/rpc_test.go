//go:build lab

package benchlab

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kvmnet/kvmnet/controller/agentclient"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// warmup is the number of untimed calls before each measured run.
const warmup = 50

// env returns the variable name or fails the benchmark saying how the lab benchmark is meant to run.
func env(b *testing.B, name string) string {
	b.Helper()
	v := os.Getenv(name)
	if v == "" {
		b.Fatalf("%s is not set: this benchmark runs inside a lab host's namespaces against a booted guest; "+
			"run `make bench-lab` (scripts/lab/bench) instead of go test", name)
	}
	return v
}

// envOr returns the variable name, or def when it is unset.
func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// dist summarises sorted durations; quantiles are nearest-rank.
type dist struct{ p50, p90, p99, max time.Duration }

func summarise(lat []time.Duration) dist {
	s := slices.Clone(lat)
	slices.Sort(s)
	q := func(p int) time.Duration { return s[min(len(s)-1, len(s)*p/100)] }
	return dist{p50: q(50), p90: q(90), p99: q(99), max: s[len(s)-1]}
}

// report publishes d in unit (µs or ms) as p50/p90/p99/max metrics.
func (d dist) report(b *testing.B, unit string) {
	scale := map[string]float64{"us": 1e3, "ms": 1e6}[unit]
	for _, m := range []struct {
		name string
		v    time.Duration
	}{{"p50", d.p50}, {"p90", d.p90}, {"p99", d.p99}, {"max", d.max}} {
		b.ReportMetric(float64(m.v.Nanoseconds())/scale, m.name+"-"+unit)
	}
}

// latencies runs call warmup times untimed, then b.N times timed, and reports p50/p90/p99/max in µs,
// the number of calls, the failed calls (a call that fails is a data point of a loaded TCG guest, not
// the end of the run; more than 1 % failing fails the benchmark) and drift: the p50 of the last tenth
// of the calls over the p50 of the first tenth (≈1 when the agent does not slow down as calls pile up).
// Progress goes to stderr every 10 % so a long run on a slow guest shows it is alive.
func latencies(b *testing.B, call func(context.Context) error) {
	ctx := context.Background()
	for i := range warmup {
		if err := call(ctx); err != nil {
			b.Fatalf("warm-up call %d: %v", i, err)
		}
	}
	lat := make([]time.Duration, 0, b.N)
	var failed int
	var lastErr error
	start := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		err := call(ctx)
		lat = append(lat, time.Since(t0))
		if err != nil {
			failed++
			lastErr = fmt.Errorf("call %d of %d after %s: %w", i, b.N, lat[i].Round(time.Millisecond), err)
		}
		if b.N >= 100 && (i+1)%(b.N/10) == 0 {
			fmt.Fprintf(os.Stderr, "[benchlab %s] %s: %d/%d calls, %d failed, %s\n", time.Now().Format("15:04:05"), b.Name(), i+1, b.N, failed,
				time.Since(start).Round(time.Second))
		}
	}
	b.StopTimer()
	if failed*100 > b.N {
		b.Fatalf("%d of %d calls failed; last: %v", failed, b.N, lastErr)
	}
	if lastErr != nil {
		b.Logf("%d of %d calls failed; last: %v", failed, b.N, lastErr)
	}
	summarise(lat).report(b, "us")
	b.ReportMetric(float64(len(lat)), "calls")
	b.ReportMetric(float64(failed), "failed")
	if tenth := len(lat) / 10; tenth > 0 {
		first, last := summarise(lat[:tenth]).p50, summarise(lat[len(lat)-tenth:]).p50
		b.ReportMetric(float64(last)/float64(first), "drift")
	}
}

// BenchmarkLabRPC measures GetState and RunChecks against the real kvmnet-agent in a booted lab guest,
// over the real virtio-serial channel: the host end of the guest's org.kvmnet.agent.0 port (QEMU's
// unix socket, KVMNET_LAB_BENCH_AGENT = serial:/path), dialed with the real controller client (resync
// handshake once, then gRPC over the byte stream) — one session for all calls, as kvmnetctl holds one
// per guest. RunChecks runs one real TCP check in the guest (KVMNET_LAB_BENCH_TARGET, default the
// default network's dnsmasq 192.168.122.1:53, the check `guests status` runs as "dnsmasq-tcp"); the
// guest-side time of that check is reported as check-p50-us. Use -benchtime=2000x or more.
func BenchmarkLabRPC(b *testing.B) {
	addr := env(b, "KVMNET_LAB_BENCH_AGENT")
	a, err := agentclient.ParseAddr(addr)
	if err != nil {
		b.Fatal(err)
	}
	if a.Scheme != "serial" {
		b.Fatalf("KVMNET_LAB_BENCH_AGENT=%s: want a serial:/path address (the lab measures the virtio-serial channel; never vsock here)", addr)
	}
	target := envOr("KVMNET_LAB_BENCH_TARGET", "192.168.122.1:53")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t0 := time.Now()
	// Calls get 60 s (not the client's 10 s default): on a loaded host a TCG guest's answer can take
	// seconds, and a slow answer is a measurement here, not a failure.
	c, err := agentclient.Dial(ctx, addr, agentclient.WithDialTimeout(30*time.Second), agentclient.WithCallTimeout(60*time.Second))
	cancel()
	if err != nil {
		b.Fatalf("dial the lab guest's agent: %v (is the guest booted and its agent port connected? scripts/lab/vm wait NAME)", err)
	}
	dial := time.Since(t0)
	b.Cleanup(func() { _ = c.Close() })
	// Right after boot the guest is still busy (NetworkManager, systemd units): the first answer
	// may take long; it is not measured.
	first, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	st, err := c.GetState(first, &kvmnetv1.GetStateRequest{})
	cancel()
	if err != nil {
		b.Fatalf("first GetState: %v", err)
	}
	b.Logf("agent %s in guest %q (%s), dial incl. resync handshake %s, first GetState %s", st.GetAgentVersion(), st.GetHostname(),
		st.GetOs().GetPrettyName(), dial.Round(time.Millisecond), time.Since(t0.Add(dial)).Round(time.Millisecond))

	// Confirm of a checkpoint that does not exist: the agent answers from memory (no sensor, no
	// NetworkManager call), so this is the floor — the channel, gRPC and the guest's scheduling alone.
	b.Run("Confirm-unknown", func(b *testing.B) {
		latencies(b, func(ctx context.Context) error {
			_, err := c.Confirm(ctx, &kvmnetv1.ConfirmRequest{CheckpointId: "kvmnet-bench-no-such-checkpoint"})
			if status.Code(err) == codes.FailedPrecondition || status.Code(err) == codes.NotFound {
				return nil
			}
			return fmt.Errorf("Confirm of an unknown checkpoint: want NotFound or FailedPrecondition, got %v", err)
		})
	})

	b.Run("GetState", func(b *testing.B) {
		latencies(b, func(ctx context.Context) error {
			st, err := c.GetState(ctx, &kvmnetv1.GetStateRequest{})
			if err == nil && (st.GetHostname() == "" || len(st.GetInterfaces()) == 0) {
				return fmt.Errorf("GetState answered without hostname or interfaces: %v", st)
			}
			return err
		})
	})

	req := &kvmnetv1.RunChecksRequest{Checks: []*kvmnetv1.Check{{Name: "dnsmasq-tcp", Kind: kvmnetv1.CheckKind_CHECK_KIND_TCP,
		Target: target, Family: kvmnetv1.Family_FAMILY_V4, TimeoutMs: 2000}}}
	b.Run("RunChecks", func(b *testing.B) {
		var inGuest []time.Duration
		var checkFailed int
		var lastCheckErr string
		latencies(b, func(ctx context.Context) error {
			r, err := c.RunChecks(ctx, req)
			if err != nil {
				return err
			}
			if len(r.GetResults()) != 1 {
				return fmt.Errorf("RunChecks answered %d results for 1 check", len(r.GetResults()))
			}
			// A failed check still is an answered RPC (its latency counts); failures are reported.
			if !r.GetResults()[0].GetOk() {
				checkFailed++
				lastCheckErr = r.GetResults()[0].GetError()
			}
			inGuest = append(inGuest, time.Duration(r.GetResults()[0].GetLatencyUs())*time.Microsecond)
			return nil
		})
		if checkFailed*100 > b.N {
			b.Fatalf("the TCP check to %s failed in %d of %d calls (last: %s): the guest's network is broken, not slow", target, checkFailed, b.N, lastCheckErr)
		}
		b.ReportMetric(float64(checkFailed), "check-failed")
		b.ReportMetric(float64(summarise(inGuest).p50.Nanoseconds())/1e3, "check-p50-us")
	})
}
