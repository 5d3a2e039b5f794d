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

// scrapeUntil scrapes until every pattern has its value (at most 3 minutes): the agent closes and
// reopens its virtio-serial port after each host session, seconds under TCG on a loaded machine, so
// a scrape right after another session can find a guest's port closed. Each scrape's wall time must
// stay within maxTook.
func scrapeUntil(t *testing.T, ctx context.Context, maxTook time.Duration, want map[string]string, extra ...string) map[string]string {
	t.Helper()
	var m map[string]string
	var missing []string
	for deadline := time.Now().Add(3 * time.Minute); ; {
		var took time.Duration
		m, took = scrapeTextfile(t, ctx, extra...)
		if took > maxTook {
			t.Errorf("exporter --textfile %v took %s, more than %s", extra, took, maxTook)
		}
		missing = missing[:0]
		for pattern, value := range want {
			if !hasSeries(m, pattern, value) {
				missing = append(missing, pattern+"="+value)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		t.Logf("scrape took %s, not yet: %v", took, missing)
		time.Sleep(2 * time.Second)
	}
	if len(missing) > 0 {
		_, res, _ := lab.Status(ctx)
		t.Fatalf("after 3 minutes the exposition still lacks %v; guests status says:\n%s", missing, tail(res.Stdout, 3000))
	}
	return m
}

func hasSeries(m map[string]string, pattern, value string) bool {
	re := regexp.MustCompile("^" + pattern + "$")
	for k, v := range m {
		if re.MatchString(k) && v == value {
			return true
		}
	}
	return false
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
	ready := map[string]string{}
	for _, g := range []string{g1, g2} {
		ready[`kvmnet_guest_agent_reachable\{domain="`+g+`",transport="virtio-serial"\}`] = "1"
	}
	m := scrapeUntil(t, ctx, 35*time.Second, ready, "--guest-timeout", "20s", "--timeout", "30s")
	t.Logf("healthy lab: %d series", len(m))
	wantSeries(t, m, `kvmnet_up`, "1")
	for _, g := range []string{g1, g2} {
		wantSeries(t, m, `kvmnet_guest_timed_out\{domain="`+g+`"\}`, "0")
		wantSeries(t, m, `kvmnet_check_success\{check="gateway-v4",domain="`+g+`"\}`, "1")
	}
	wantSeries(t, m, `kvmnet_guest_nic_info\{bridge="virbr0",domain="g1",guest_ifname="enp1s0",mac="[0-9a-f:]+",network="default",target_device="vnet\d+"\}`, "1")
	wantSeries(t, m, `kvmnet_guest_nic_info\{bridge="virbr0",domain="g2",guest_ifname="ens3",mac="[0-9a-f:]+",network="default",target_device="vnet\d+"\}`, "1")
	wantSeries(t, m, `kvmnet_network_active\{network="default"\}`, "1")

	// Broken: g1's link set down on the host side.
	if res := lab.Script(ctx, "fault", "nic_link_down", "inject", g1); res.Code != 0 {
		t.Fatalf("inject nic_link_down: %s", res)
	}
	t.Cleanup(func() { lab.Script(context.Background(), "fault", "nic_link_down", "undo", g1) })
	m = scrapeUntil(t, ctx, 35*time.Second, map[string]string{
		`kvmnet_finding\{code="guest_nic_link_down",domain="g1",mac="[0-9a-f:]+",network="default",severity="error"\}`: "1"},
		"--guest-timeout", "20s", "--timeout", "30s")
	wantSeries(t, m, `kvmnet_finding\{code="guest_nic_link_down",domain="g1",mac="[0-9a-f:]+",network="default",severity="error"\}`, "1")
	wantSeries(t, m, `kvmnet_guest_healthy\{domain="g1"\}`, "0")
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
	// Every scrape ends within its 15 s budget (plus process start) while g2 hangs; the one that
	// finds g1's port open shows g1 answering next to g2 timed out.
	m = scrapeUntil(t, ctx, 20*time.Second, map[string]string{
		`kvmnet_guest_timed_out\{domain="g2"\}`:                                 "1",
		`kvmnet_guest_agent_reachable\{domain="g1",transport="virtio-serial"\}`: "1"},
		"--guest-timeout", "10s", "--timeout", "15s")
	wantSeries(t, m, `kvmnet_up`, "1")
	wantSeries(t, m, `kvmnet_guest_agent_reachable\{domain="g2",transport="virtio-serial"\}`, "0")
	wantSeries(t, m, `kvmnet_guest_timed_out\{domain="g1"\}`, "0")
	if err := syscall.Kill(qemu, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
}
