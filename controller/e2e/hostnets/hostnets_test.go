//go:build lab

package hostnets

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/kvmnet/kvmnet/controller/e2e"
)

// The guests: r1 on network "routed" (192.168.150.0/24), o1 on network "open" (192.168.151.0/24).
const (
	r1        = "r1"
	o1        = "o1"
	routedNet = "192.168.150.0/24"
	openNet   = "192.168.151.0/24"
)

var lab *e2e.Lab

func TestMain(m *testing.M) {
	if os.Getenv("KVMNET_LAB") == "0" {
		fmt.Println("=== LAB E2E (hostnets) SKIPPED on request (KVMNET_LAB=0): no real guests were started or tested ===")
		os.Exit(0)
	}
	_, file, _, _ := runtime.Caller(0)
	repo := filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "LAB E2E (hostnets) FAILED: needs root (set KVMNET_LAB=0 to skip explicitly)")
		os.Exit(1)
	}
	for _, b := range []string{"ip", "nsenter", "virsh", "libvirtd", "qemu-system-x86_64", "mmdebstrap", "iptables-nft"} {
		if _, err := exec.LookPath(b); err != nil {
			fmt.Fprintf(os.Stderr, "LAB E2E (hostnets) FAILED: %s not on PATH: run `make deps`\n", b)
			os.Exit(1)
		}
	}
	if _, err := os.Stat(filepath.Join(repo, "bin", "kvmnetctl")); err != nil {
		fmt.Fprintln(os.Stderr, "LAB E2E (hostnets) FAILED: bin/kvmnetctl not built: run `make build`")
		os.Exit(1)
	}
	name := os.Getenv("KVMNET_LAB_HOSTNETS_NAME")
	if name == "" {
		base := os.Getenv("KVMNET_LAB_NAME")
		if base == "" {
			base = "kvmnet-lab-e2e"
		}
		name = base + "-hostnets"
	}
	lab = &e2e.Lab{Repo: repo, Name: name, Logf: func(f string, a ...any) {
		fmt.Printf("[hostnets %s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(f, a...))
	}}
	code := run(m)
	if os.Getenv("KVMNET_LAB_KEEP") == "1" {
		fmt.Printf("lab %s left running (KVMNET_LAB_KEEP=1); stop it with KVMNET_LAB_NAME=%s scripts/lab/down\n", name, name)
	} else if res := lab.Script(context.Background(), "down"); res.Code != 0 {
		fmt.Fprintf(os.Stderr, "lab down failed:\n%s\n", res)
		code = 1
	}
	os.Exit(code)
}

func run(m *testing.M) int {
	ctx := context.Background()
	steps := [][]string{{"up"}, {"routed", "up"}, {"routed", "open-up"}, {"routed", "noroute"},
		{"vm", "create", r1, "--network", "routed", "--no-wait"}, {"vm", "create", o1, "--network", "open", "--names", "ens3", "--no-wait"},
		{"vm", "wait", r1}, {"vm", "wait", o1}}
	for _, s := range steps {
		if res := lab.Script(ctx, s[0], s[1:]...); res.Code != 0 {
			fmt.Fprintf(os.Stderr, "LAB E2E (hostnets) FAILED: %v:\n%s\n", s, res)
			return 1
		}
	}
	return m.Run()
}

// finding is one finding of kvmnetctl's JSON contract, with its evidence.
type finding struct {
	Code     string   `json:"code"`
	Severity string   `json:"severity"`
	Summary  string   `json:"summary"`
	Fix      string   `json:"fix"`
	Evidence []string `json:"evidence"`
}

// report is the part of `guests status -o json` / `host check -o json` these cases read.
type report struct {
	Host struct {
		Findings []finding `json:"findings"`
	} `json:"host"`
	Networks []struct {
		Name        string `json:"name"`
		Forward     string `json:"forward"`
		Masquerade  string `json:"masquerade"`
		Egress      string `json:"egress"`
		ReturnRoute string `json:"return_route"`
	} `json:"networks"`
	Guests []struct {
		Name     string    `json:"name"`
		Healthy  bool      `json:"healthy"`
		Findings []finding `json:"findings"`
	} `json:"guests"`
}

func (r report) all() []finding {
	out := append([]finding{}, r.Host.Findings...)
	for _, g := range r.Guests {
		out = append(out, g.Findings...)
	}
	return out
}

func (r report) codes() []string {
	var out []string
	for _, f := range r.all() {
		out = append(out, f.Severity+":"+f.Code)
	}
	return out
}

func (r report) find(code string) (finding, bool) {
	for _, f := range r.all() {
		if f.Code == code {
			return f, true
		}
	}
	return finding{}, false
}

func (r report) errors() []string {
	var out []string
	for _, f := range r.all() {
		if f.Severity == "error" {
			out = append(out, f.Code)
		}
	}
	return out
}

func ctlJSON(ctx context.Context, args ...string) (report, error) {
	res := lab.Ctl(ctx, append(args, "-o", "json")...)
	var r report
	if res.Code != 0 && res.Code != 1 {
		return r, fmt.Errorf("kvmnetctl %v:\n%s", args, res)
	}
	if err := json.Unmarshal([]byte(res.Stdout), &r); err != nil {
		return r, fmt.Errorf("kvmnetctl %v: not the JSON contract: %v\n%s", args, err, res)
	}
	return r, nil
}

func hostCheck(ctx context.Context) (report, error) { return ctlJSON(ctx, "host", "check") }
func status(ctx context.Context, vm string) (report, error) {
	return ctlJSON(ctx, "guests", "status", vm)
}

// curl is the guest's own fetch from the lab's web target by address (DNS is not what is tested).
func curl(ctx context.Context, vm string) error {
	res := lab.Exec(ctx, vm, "curl", "-sS", "-4", "-o", "/dev/null", "-w", "%{http_code}", "-m", "5", "http://203.0.113.1/debian/dists/bookworm/Release")
	if res.Code != 0 || strings.TrimSpace(res.Stdout) != "200" {
		return fmt.Errorf("guest %s cannot fetch http://203.0.113.1/: exit %d %s%s", vm, res.Code, res.Stdout, res.Stderr)
	}
	return nil
}

func script(ctx context.Context, t *testing.T, name string, args ...string) {
	t.Helper()
	if res := lab.Script(ctx, name, args...); res.Code != 0 {
		t.Fatalf("%s %v:\n%s", name, args, res)
	}
}

// upstreamRoute is the upstream router's own answer for subnet: its route, or "" (the test can
// look there; kvmnetctl on the host cannot).
func upstreamRoute(t *testing.T, subnet string) string {
	t.Helper()
	out, err := exec.Command("ip", "-n", lab.Name+"-inet", "route", "show", subnet).CombinedOutput()
	if err != nil {
		t.Fatalf("ip -n %s-inet route show %s: %v: %s", lab.Name, subnet, err, out)
	}
	return strings.TrimSpace(string(out))
}

// noReturnRoute checks case (a) for one guest: the upstream lacks the route, the guest's curl
// fails, the host check raises nothing (no NAT alarm, no error) and names the return route unknown,
// and the guest's finding blames the upstream's route with evidence.
func noReturnRoute(ctx context.Context, t *testing.T, vm, network, subnet string) {
	t.Helper()
	if r := upstreamRoute(t, subnet); r != "" {
		t.Fatalf("the upstream already routes %s: %s", subnet, r)
	}
	if err := curl(ctx, vm); err == nil {
		t.Fatalf("%s reaches the web target although the upstream has no route back: the lab does not reproduce the case", vm)
	}
	hc, err := hostCheck(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if e := hc.errors(); len(e) > 0 {
		t.Fatalf("host errors with nothing broken on the host: %v", hc.codes())
	}
	if _, ok := hc.find("nat_masquerade_missing"); ok {
		t.Fatalf("false NAT alarm on a network without NAT: %v", hc.codes())
	}
	seen := false
	for _, n := range hc.Networks {
		if n.Name != network {
			continue
		}
		seen = true
		if n.Masquerade != "n/a" || n.Egress != "accept" ||
			!strings.HasPrefix(n.ReturnRoute, "unknown: the upstream router must route "+subnet+" back via this host's address on up0") {
			t.Fatalf("network %s: masquerade=%q egress=%q return_route=%q", network, n.Masquerade, n.Egress, n.ReturnRoute)
		}
	}
	if !seen {
		t.Fatalf("host check does not list network %s", network)
	}
	t0 := time.Now()
	var f finding
	if err := e2e.Poll(ctx, 2*time.Minute, 2*time.Second, func() error {
		st, err := status(ctx, vm)
		if err != nil {
			return err
		}
		var ok bool
		if f, ok = st.find("guest_egress_blocked"); !ok {
			return fmt.Errorf("no guest_egress_blocked for %s yet: %v", vm, st.codes())
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: upstream cause reported %s after the first look: %s", vm, time.Since(t0).Round(time.Millisecond), f.Summary)
	for _, kv := range []string{"likely_cause=upstream_return_route", "return_route=unknown", "host_egress=accept"} {
		if !contains(f.Evidence, kv) {
			t.Errorf("evidence lacks %s: %v", kv, f.Evidence)
		}
	}
	if !strings.Contains(f.Fix, "ip route add "+subnet+" via") || strings.Contains(f.Fix, "host fix") {
		t.Errorf("fix does not point to the upstream router: %s", f.Fix)
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// healthy waits until the host has no error, vm is healthy and its own curl works.
func healthy(ctx context.Context, vm string, timeout time.Duration) error {
	return e2e.Poll(ctx, timeout, 2*time.Second, func() error {
		if err := curl(ctx, vm); err != nil {
			return err
		}
		hc, err := hostCheck(ctx)
		if err != nil {
			return err
		}
		if e := hc.errors(); len(e) > 0 {
			return fmt.Errorf("host check reports %v", hc.codes())
		}
		st, err := status(ctx, vm)
		if err != nil {
			return err
		}
		if len(st.Guests) != 1 || !st.Guests[0].Healthy {
			return fmt.Errorf("%s not healthy: %v", vm, st.codes())
		}
		return nil
	})
}

// TestRoutedNetwork: (a) no route back upstream → return route unknown, no false alarm on the
// host, the guest's finding names the upstream; the upstream learns the route → healthy; (b)
// ip_forward=0 → ip_forward_off with evidence → host fix → the guest's curl works; a foreign FORWARD
// REJECT for the subnet → firewall_egress_blocked naming the rule, no host fix promised for it.
func TestRoutedNetwork(t *testing.T) {
	ctx := context.Background()
	t.Cleanup(func() {
		for _, a := range [][]string{{"fault", "ip_forward_off", "undo"}, {"routed", "unreject"}, {"routed", "noroute"}} {
			if res := lab.Script(ctx, a[0], a[1:]...); res.Code != 0 {
				t.Errorf("cleanup %v:\n%s", a, res)
			}
		}
	})
	t.Run("no return route upstream", func(t *testing.T) {
		noReturnRoute(ctx, t, r1, "routed", routedNet)
	})
	script(ctx, t, "routed", "route")
	if err := healthy(ctx, r1, time.Minute); err != nil {
		t.Fatalf("with the upstream's route back: %v", err)
	}

	t.Run("ip_forward=0 on the host", func(t *testing.T) {
		script(ctx, t, "fault", "ip_forward_off", "inject")
		t0 := time.Now()
		var f finding
		if err := e2e.Poll(ctx, time.Minute, time.Second, func() error {
			hc, err := hostCheck(ctx)
			if err != nil {
				return err
			}
			var ok bool
			if f, ok = hc.find("ip_forward_off"); !ok {
				return fmt.Errorf("ip_forward_off not reported: %v", hc.codes())
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		detect := time.Since(t0)
		if f.Severity != "error" || !strings.Contains(f.Summary, "routed") || !strings.Contains(f.Fix, "host fix --only ip_forward_off") {
			t.Fatalf("finding: %+v", f)
		}
		if err := curl(ctx, r1); err == nil {
			t.Fatal("ip_forward=0 reported but r1's curl works: the lab does not reproduce the fault")
		}
		st, err := status(ctx, r1)
		if err != nil {
			t.Fatal(err)
		}
		if g, ok := st.find("guest_egress_blocked"); !ok || contains(g.Evidence, "likely_cause=upstream_return_route") ||
			!strings.Contains(g.Fix, "host fix --only ip_forward_off") {
			t.Fatalf("guest finding does not point to the host cause: %+v (codes %v)", g, st.codes())
		}
		t1 := time.Now()
		if res := lab.Ctl(ctx, "host", "fix", "--yes", "--only", "ip_forward_off"); res.Code != 0 {
			t.Fatalf("host fix:\n%s", res)
		}
		fix := time.Since(t1)
		if err := healthy(ctx, r1, time.Minute); err != nil {
			t.Fatalf("after host fix: %v", err)
		}
		t.Logf("MEASURE routed ip_forward_off: detected %s after inject, host fix %s, healthy + curl %s after inject",
			detect.Round(time.Millisecond), fix.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
	})

	t.Run("foreign FORWARD REJECT for the routed subnet", func(t *testing.T) {
		script(ctx, t, "routed", "reject")
		t0 := time.Now()
		var f finding
		if err := e2e.Poll(ctx, time.Minute, time.Second, func() error {
			hc, err := hostCheck(ctx)
			if err != nil {
				return err
			}
			var ok bool
			if f, ok = hc.find("firewall_egress_blocked"); !ok {
				return fmt.Errorf("firewall_egress_blocked not reported: %v", hc.codes())
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		t.Logf("detected %s after the REJECT: %s", time.Since(t0).Round(time.Millisecond), f.Summary)
		if !strings.Contains(f.Summary, "-A FORWARD -s "+routedNet+" -j REJECT") || !contains(f.Evidence, "verdict=reject") {
			t.Fatalf("finding does not name the rule: %+v", f)
		}
		if err := curl(ctx, r1); err == nil {
			t.Fatal("REJECT reported but r1's curl works")
		}
		st, err := status(ctx, r1)
		if err != nil {
			t.Fatal(err)
		}
		if g, ok := st.find("guest_egress_blocked"); !ok || strings.Contains(g.Fix, "host fix --only firewall_egress_blocked") {
			t.Fatalf("guest finding promises a host fix that does not exist: %+v", g)
		}
		// kvmnet does not own that rule: the lab takes it back, as the user would.
		script(ctx, t, "routed", "unreject")
		if err := healthy(ctx, r1, time.Minute); err != nil {
			t.Fatalf("after removing the REJECT: %v", err)
		}
	})

	// The bridge tutorial moves the uplink up0 into br0: the network still says dev='up0', so
	// libvirt's own catch-all REJECT meets every packet that now leaves by br0.
	t.Run("forward dev moved into a host bridge", func(t *testing.T) {
		t.Cleanup(func() {
			for _, a := range [][]string{{"routed", "dev", "up0"}, {"hostbridge", "down"}} {
				if res := lab.Script(ctx, a[0], a[1:]...); res.Code != 0 {
					t.Errorf("cleanup %v:\n%s", a, res)
				}
			}
		})
		script(ctx, t, "hostbridge", "up")
		t0 := time.Now()
		var f finding
		if err := e2e.Poll(ctx, time.Minute, time.Second, func() error {
			hc, err := hostCheck(ctx)
			if err != nil {
				return err
			}
			var ok bool
			if f, ok = hc.find("network_forward_dev_mismatch"); !ok {
				return fmt.Errorf("network_forward_dev_mismatch not reported: %v", hc.codes())
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		detect := time.Since(t0)
		t.Logf("detected %s after hostbridge up: %s", detect.Round(time.Millisecond), f.Summary)
		if !strings.Contains(f.Summary, "up0 is now a port of bridge br0") || !contains(f.Evidence, "forward_dev=up0") ||
			!strings.Contains(f.Fix, "<forward mode='route' dev='br0'/>") {
			t.Fatalf("finding: %+v", f)
		}
		if err := curl(ctx, r1); err == nil {
			t.Fatal("mismatch reported but r1's curl works: the lab does not reproduce it")
		}
		// The finding's own fix, as the user runs it (virsh net-edit + restart).
		t1 := time.Now()
		script(ctx, t, "routed", "dev", "br0")
		if err := healthy(ctx, r1, 2*time.Minute); err != nil {
			t.Fatalf("after dev='br0': %v", err)
		}
		t.Logf("MEASURE routed forward dev: detected %s, net-edit + restart and healthy + curl %s later",
			detect.Round(time.Millisecond), time.Since(t1).Round(time.Millisecond))
	})
	script(ctx, t, "routed", "noroute")
}

// TestOpenNetwork: libvirt adds no rule for an open network, so nothing on the host decides; without
// the upstream's route back the same unknown return route is reported, with it the guest is healthy.
func TestOpenNetwork(t *testing.T) {
	ctx := context.Background()
	t.Cleanup(func() {
		if res := lab.Script(ctx, "routed", "noroute"); res.Code != 0 {
			t.Errorf("cleanup:\n%s", res)
		}
	})
	noReturnRoute(ctx, t, o1, "open", openNet)
	script(ctx, t, "routed", "route")
	if err := healthy(ctx, o1, time.Minute); err != nil {
		t.Fatalf("with the upstream's route back: %v", err)
	}
}
