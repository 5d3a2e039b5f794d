//go:build lab

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// scrapeTextfile runs `kvmnetctl exporter --textfile` in the lab host and returns kvmnet.prom as
// series -> value, with the command's wall time.
func scrapeTextfile(t *testing.T, ctx context.Context, extra ...string) (map[string]string, time.Duration) {
	t.Helper()
	dir := filepath.Join(lab.Repo, ".lab", lab.Name, "exporter")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	res := lab.Ctl(ctx, append([]string{"exporter", "--textfile", dir}, extra...)...)
	if res.Code != 0 {
		t.Fatalf("exporter --textfile: %s", res)
	}
	b, err := os.ReadFile(filepath.Join(dir, "kvmnet.prom"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		i := strings.LastIndex(l, " ")
		out[l[:i]] = l[i+1:]
	}
	return out, res.Took
}

func wantSeries(t *testing.T, m map[string]string, pattern, value string) {
	t.Helper()
	re := regexp.MustCompile("^" + pattern + "$")
	for k, v := range m {
		if re.MatchString(k) {
			if v != value {
				t.Errorf("%s = %s, want %s", k, v, value)
			}
			return
		}
	}
	t.Errorf("no series matches %s", pattern)
}

// The exporter against the real lab: both guests' series from their real agents; a guest broken
// on the host side (link down) gets its finding and healthy 0; a guest whose QEMU is stopped
// (SIGSTOP by PID) is kvmnet_guest_timed_out 1 while the collection still ends within its budget.
func TestExporterLab(t *testing.T) {
	ctx := context.Background()
	// TCG guests on a shared 2-core machine answer GetState + checks in seconds right after boot: a
	// generous per-guest timeout for the healthy and broken cases (the hung case sets its own).
	slow := []string{"--guest-timeout", "20s", "--timeout", "30s"}
	m, took := scrapeTextfile(t, ctx, slow...)
	t.Logf("healthy lab: exporter --textfile took %s, %d series", took, len(m))
	wantSeries(t, m, `kvmnet_up`, "1")
	for _, g := range []string{g1, g2} {
		wantSeries(t, m, `kvmnet_guest_agent_reachable\{domain="`+g+`",transport="virtio-serial"\}`, "1")
		wantSeries(t, m, `kvmnet_guest_timed_out\{domain="`+g+`"\}`, "0")
		wantSeries(t, m, `kvmnet_check_success\{check="gateway-v4",domain="`+g+`"\}`, "1")
	}
	wantSeries(t, m, `kvmnet_guest_nic_info\{bridge="virbr0",domain="g1",guest_ifname="enp1s0",mac="[0-9a-f:]+",network="default",target_device="vnet\d+"\}`, "1")
	wantSeries(t, m, `kvmnet_guest_nic_info\{bridge="virbr0",domain="g2",guest_ifname="ens3",mac="[0-9a-f:]+",network="default",target_device="vnet\d+"\}`, "1")
	wantSeries(t, m, `kvmnet_network_active\{network="default"\}`, "1")
	if t.Failed() {
		// What guests status says about the same guests (the exposition carries no error text).
		_, res, _ := lab.Status(ctx)
		t.Logf("guests status for comparison:\n%s", tail(res.Stdout, 3000))
	}

	// Broken: g1's link set down on the host side.
	if res := lab.Script(ctx, "fault", "nic_link_down", "inject", g1); res.Code != 0 {
		t.Fatalf("inject nic_link_down: %s", res)
	}
	t.Cleanup(func() { lab.Script(context.Background(), "fault", "nic_link_down", "undo", g1) })
	m, _ = scrapeTextfile(t, ctx, slow...)
	wantSeries(t, m, `kvmnet_finding\{code="guest_nic_link_down",domain="g1",mac="[0-9a-f:]+",network="default",severity="error"\}`, "1")
	wantSeries(t, m, `kvmnet_guest_healthy\{domain="g1"\}`, "0")
	wantSeries(t, m, `kvmnet_guest_agent_reachable\{domain="g2",transport="virtio-serial"\}`, "1")
	if res := lab.Script(ctx, "fault", "nic_link_down", "undo", g1); res.Code != 0 {
		t.Fatalf("undo nic_link_down: %s", res)
	}

	// Hung: g2's QEMU stopped by PID (libvirt's pid file inside the lab host's mount namespace).
	lvPID, err := os.ReadFile(filepath.Join(lab.Repo, ".lab", lab.Name, "libvirtd.pid"))
	if err != nil {
		t.Fatal(err)
	}
	qb, err := os.ReadFile("/proc/" + strings.TrimSpace(string(lvPID)) + "/root/run/libvirt/qemu/" + g2 + ".pid")
	if err != nil {
		t.Fatal(err)
	}
	qemu, err := strconv.Atoi(strings.TrimSpace(string(qb)))
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(qemu, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(qemu, syscall.SIGCONT) })
	m, took = scrapeTextfile(t, ctx, "--guest-timeout", "3s", "--timeout", "8s")
	t.Logf("g2's QEMU stopped: exporter --textfile took %s (guest timeout 3 s, budget 8 s)", took)
	wantSeries(t, m, `kvmnet_up`, "1")
	wantSeries(t, m, `kvmnet_guest_timed_out\{domain="g2"\}`, "1")
	wantSeries(t, m, `kvmnet_guest_agent_reachable\{domain="g2",transport="virtio-serial"\}`, "0")
	wantSeries(t, m, `kvmnet_guest_agent_reachable\{domain="g1",transport="virtio-serial"\}`, "1")
	wantSeries(t, m, `kvmnet_guest_timed_out\{domain="g1"\}`, "0")
	if took > 12*time.Second {
		t.Errorf("exporter with a stopped guest took %s, want within its 8 s budget (+ process start)", took)
	}
	if err := syscall.Kill(qemu, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
}
