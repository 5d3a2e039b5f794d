//go:build lab

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// g3 is the bridged guest: its only NIC is <interface type='bridge'><source bridge='br0'/> on the
// lab host's br0 (up0 enslaved), served by the LAN's DHCP in the stand-in internet namespace.
const g3 = "g3"

// lanEgress is g3's own check: HTTP to the LAN's server by address (its resolver is the LAN's, and
// the address keeps DNS out of what is being tested), through the guest's bridged NIC.
func lanEgress(ctx context.Context) error {
	res := lab.Exec(ctx, g3, "curl", "-sS", "-4", "-o", "/dev/null", "-w", "%{http_code}", "-m", "8", "http://203.0.113.1/debian/dists/bookworm/Release")
	if res.Code != 0 || strings.TrimSpace(res.Stdout) != "200" {
		return fmt.Errorf("guest %s cannot fetch from the LAN over br0:\n%s", g3, res)
	}
	return nil
}

// hostFinding returns the host check's findings with code.
func hostFinding(rep Report, code string) []Finding {
	var out []Finding
	for _, f := range rep.Host.Findings {
		if f.Code == code {
			out = append(out, f)
		}
	}
	return out
}

// TestHostBridgeNetfilter: a host bridge no libvirt network owns, the lab uplink enslaved, a guest
// on type='bridge'. Docker's FORWARD DROP with br_netfilter on (bridge-nf-call-iptables=1, the
// default here) is detected as bridge_netfilter_drop naming the rule and the sysctl, the dry run
// changes nothing, the fix makes the guest's own curl work; the same DROP with the sysctl at 0 raises
// nothing and the guest's curl works.
func TestHostBridgeNetfilter(t *testing.T) {
	ctx := context.Background()
	script := func(name string, args ...string) {
		t.Helper()
		if res := lab.Script(ctx, name, args...); res.Code != 0 {
			t.Fatalf("%s %v:\n%s", name, args, res)
		}
	}
	script("hostbridge", "up")
	t.Cleanup(func() {
		for _, a := range [][]string{{"vm", "destroy", g3}, {"hostbridge", "undrop"}, {"hostbridge", "nf-on"}, {"hostbridge", "down"}} {
			if res := lab.Script(ctx, a[0], a[1:]...); res.Code != 0 {
				t.Errorf("cleanup %v:\n%s", a, res)
			}
		}
	})
	t0 := time.Now()
	script("vm", "create", g3, "--names", "ens3", "--bridge", "br0")
	if err := Poll(ctx, 4*time.Minute, 2*time.Second, func() error { return lanEgress(ctx) }); err != nil {
		t.Fatalf("bridged baseline: %v", err)
	}
	t.Logf("g3 up on br0 with a LAN lease, its curl works: %s after create", time.Since(t0).Round(time.Second))
	rep, _, err := lab.HostCheck(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if e := rep.Errors(); len(e) > 0 {
		t.Fatalf("healthy host bridge reported with errors: %v", rep.Codes())
	}

	t.Run("forward drop with bridge-nf-call-iptables=1", func(t *testing.T) {
		script("hostbridge", "drop")
		t1 := time.Now()
		var f Finding
		if err := Poll(ctx, 2*time.Minute, 2*time.Second, func() error {
			rep, _, err := lab.HostCheck(ctx)
			if err != nil {
				return err
			}
			fs := hostFinding(rep, "bridge_netfilter_drop")
			if len(fs) == 0 {
				return fmt.Errorf("bridge_netfilter_drop not reported; codes %v", rep.Codes())
			}
			f = fs[0]
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		t.Logf("detected after %s: %s", time.Since(t1).Round(time.Millisecond), f.Summary)
		for _, want := range []string{"g3", "br0", "net.bridge.bridge-nf-call-iptables=1", "policy DROP of FORWARD", "iptables-nft"} {
			if !strings.Contains(f.Summary, want) {
				t.Errorf("summary lacks %q: %s", want, f.Summary)
			}
		}
		if f.Severity != "error" || !strings.Contains(f.Fix, "--bridge-nf-off") {
			t.Errorf("severity %s, fix %s", f.Severity, f.Fix)
		}
		if lanEgress(ctx) == nil {
			t.Fatal("the DROP is reported but g3's curl still works: the lab does not reproduce the fault")
		}
		dry := lab.Ctl(ctx, "host", "fix", "--dry-run", "--only", "bridge_netfilter_drop")
		if !strings.Contains(dry.Stdout, "iptables-nft -I DOCKER-USER -i br0 -o br0 -m physdev --physdev-is-bridged") ||
			!strings.Contains(dry.Stdout, "warning: accepts every frame bridged on br0") {
			t.Fatalf("dry run does not show the rule and its trade-off:\n%s", dry)
		}
		if lanEgress(ctx) == nil {
			t.Fatal("the dry run changed something: g3 reaches the LAN")
		}
		t2 := time.Now()
		if res := lab.Ctl(ctx, "host", "fix", "--yes", "--only", "bridge_netfilter_drop"); res.Code != 0 {
			t.Fatalf("host fix:\n%s", res)
		}
		t.Logf("host fix took %s", time.Since(t2).Round(time.Millisecond))
		if err := Poll(ctx, time.Minute, 2*time.Second, func() error { return lanEgress(ctx) }); err != nil {
			t.Fatalf("after the fix: %v", err)
		}
		rep, _, err := lab.HostCheck(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(hostFinding(rep, "bridge_netfilter_drop")) > 0 || len(rep.Errors()) > 0 {
			t.Fatalf("still reported after the fix: %v", rep.Codes())
		}
		script("hostbridge", "undrop")
	})

	t.Run("same drop with bridge-nf-call-iptables=0: no alarm", func(t *testing.T) {
		script("hostbridge", "drop")
		script("hostbridge", "nf-off")
		if err := Poll(ctx, time.Minute, 2*time.Second, func() error { return lanEgress(ctx) }); err != nil {
			t.Fatalf("with the sysctl 0 the DROP must not touch bridged frames: %v", err)
		}
		rep, _, err := lab.HostCheck(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(hostFinding(rep, "bridge_netfilter_drop")) > 0 || len(rep.Errors()) > 0 {
			t.Fatalf("false alarm with bridge-nf-call-iptables=0: %v", rep.Codes())
		}
		script("hostbridge", "undrop")
		script("hostbridge", "nf-on")
	})
}
