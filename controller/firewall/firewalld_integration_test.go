package firewall

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kvmnet/kvmnet/controller/runner"
	"github.com/kvmnet/kvmnet/controller/snapshot"
	"github.com/kvmnet/kvmnet/scripts/lab/testenv"
)

// TestFirewalldReal runs Debian's firewalld in a test namespace on a private bus, with libvirt 9.0's
// zone and policy files removed from its defaults (what a missing or broken libvirt-daemon-system
// leaves): the reader must find virbr0 in the default zone public and the guests' DHCP rejected
// there, without ever running firewall-cmd; FirewalldZoneFix through the runner must make DHCP pass
// in the libvirt zone, and the binding survive a reload. Then a policy rejecting forwarded traffic
// from the libvirt zone: the reader names it, FirewalldPolicyFix makes egress pass again.
func TestFirewalldReal(t *testing.T) {
	testenv.Require(t, "ip", "dbus-daemon", "firewalld", "firewall-cmd", "nft", "env")
	ns := testenv.NewNetns(t, "fwd")
	ns.MustRun("ip", "link", "add", "virbr0", "type", "bridge", "stp_state", "0")
	ns.MustRun("ip", "addr", "add", "192.168.122.1/24", "dev", "virbr0")
	ns.MustRun("ip", "link", "set", "virbr0", "up")
	ns.MustRun("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p")
	ns.MustRun("ip", "link", "set", "eth0", "up")
	bus := testenv.StartBus(t, ns)
	start := time.Now()
	// Debian's firewalld package ships no libvirt zone (libvirt-daemon-system does): as on a host
	// where that package is missing.
	fwd := testenv.StartFirewalld(t, ns, bus, nil, "zones/libvirt.xml")
	t.Logf("firewalld up in %v", time.Since(start).Round(time.Millisecond))

	// Only nft (and iptables-save) may run while reading: a runner that records every argv.
	rec := &recordRunner{r: runner.NewExec(runner.InNetns(ns.Name))}
	files := os.DirFS(fwd.Root)
	read := func() (*State, snapshot.Firewall) {
		t.Helper()
		rec.calls = nil
		st, err := NewReader(rec, Options{Files: files}).Read(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range rec.calls {
			if strings.Contains(c, "firewall-cmd") {
				t.Fatalf("the reader ran %q: it must take firewalld's state from files and nft only", c)
			}
		}
		return st, st.Snapshot([]snapshot.Network{defaultNet()}, "eth0")
	}
	fc := FirewallCmd{Bus: bus.Address}
	apply := func(f Fix) {
		t.Helper()
		steps, err := NewFixer(rec).Apply(context.Background(), f, false)
		if err != nil {
			t.Fatalf("apply %s: %v (steps %+v)", f.Code, err, steps)
		}
	}

	st, fw := read()
	if !fw.Firewalld.Running || fw.Firewalld.LibvirtZone || fw.Firewalld.InterfaceZones["virbr0"] != "public" {
		t.Fatalf("firewalld %+v, want running, no libvirt zone, virbr0 in public", fw.Firewalld)
	}
	dhcp := flowsByKind(fw, "dhcp")[0]
	if dhcp.Verdict != snapshot.VerdictReject || dhcp.FirewalldZone != "public" {
		t.Fatalf("dhcp %s in zone %q (%s: %s), want reject in public", dhcp.Verdict, dhcp.FirewalldZone, dhcp.Chain, dhcp.Rule)
	}

	f, err := FirewalldZoneFix(st.Firewalld, "virbr0", fc)
	if err != nil {
		t.Fatal(err)
	}
	apply(f)
	st, _ = read()
	if f, err = FirewalldZoneFix(st.Firewalld, "virbr0", fc); err != nil || len(f.Commands) != 2 {
		t.Fatalf("zone fix once the zone exists: %v, %d commands (want the two bindings only)", err, len(f.Commands))
	}
	apply(f) // idempotent: both bindings are checked first
	if _, err := os.Stat(filepath.Join(fwd.Root, "etc/firewalld/zones/libvirt.xml")); err != nil {
		t.Fatalf("the permanent libvirt zone was not written: %v", err)
	}
	check := func(when string) {
		t.Helper()
		_, fw := read()
		dhcp := flowsByKind(fw, "dhcp")[0]
		dns := flowsByKind(fw, "dns")[0]
		if !fw.Firewalld.LibvirtZone || fw.Firewalld.InterfaceZones["virbr0"] != "libvirt" ||
			dhcp.Verdict != snapshot.VerdictAccept || dhcp.FirewalldZone != "libvirt" || dns.Verdict != snapshot.VerdictAccept {
			t.Fatalf("%s: firewalld %+v, dhcp %s (%s), dns %s (%s)", when, fw.Firewalld, dhcp.Verdict, dhcp.Chain, dns.Verdict, dns.Chain)
		}
	}
	check("after the zone fix")
	fwd.MustCmd(t, "--reload")
	check("after a reload (permanent binding)")

	// A policy that rejects everything forwarded from the guests' zone.
	fwd.MustCmd(t, "--permanent", "--new-policy=no-guests-out")
	fwd.MustCmd(t, "--permanent", "--policy=no-guests-out", "--add-ingress-zone=libvirt")
	fwd.MustCmd(t, "--permanent", "--policy=no-guests-out", "--add-egress-zone=ANY")
	fwd.MustCmd(t, "--permanent", "--policy=no-guests-out", "--set-target=REJECT")
	fwd.MustCmd(t, "--reload")
	st, fw = read()
	egress := flowsByKind(fw, "egress")[0]
	if egress.Verdict != snapshot.VerdictReject || egress.FirewalldPolicy != "no-guests-out" {
		t.Fatalf("egress %s policy %q (%s: %s), want reject by no-guests-out", egress.Verdict, egress.FirewalldPolicy, egress.Chain, egress.Rule)
	}
	if len(fw.Firewalld.Policies) != 1 || fw.Firewalld.Policies[0].Name != "no-guests-out" || !fw.Firewalld.Policies[0].Active {
		t.Fatalf("rejecting policies %+v", fw.Firewalld.Policies)
	}
	f, err = FirewalldPolicyFix(st.Firewalld, "virbr0", fc)
	if err != nil {
		t.Fatal(err)
	}
	apply(f)
	st, fw = read()
	egress = flowsByKind(fw, "egress")[0]
	if egress.Verdict != snapshot.VerdictAccept || egress.FirewalldPolicy != "kvmnet-libvirt" {
		t.Fatalf("after the policy fix: egress %s policy %q (%s: %s)", egress.Verdict, egress.FirewalldPolicy, egress.Chain, egress.Rule)
	}
	if p, ok := st.Firewalld.Policy("kvmnet-libvirt"); !ok || p.Target != "ACCEPT" || p.Priority != -2 {
		t.Fatalf("kvmnet policy %+v", p)
	}
	if p, _ := st.Firewalld.Policy("no-guests-out"); p.Target != "REJECT" {
		t.Fatalf("the user's policy was changed: %+v", p)
	}
	// Applying again changes nothing: the policy exists now, so there is no --new-policy.
	f, err = FirewalldPolicyFix(st.Firewalld, "virbr0", fc)
	if err != nil {
		t.Fatal(err)
	}
	apply(f)
	if _, fw = read(); flowsByKind(fw, "egress")[0].Verdict != snapshot.VerdictAccept {
		t.Fatal("egress rejected after applying the policy fix twice")
	}
}

// recordRunner records each argv before running it.
type recordRunner struct {
	r     runner.Runner
	calls []string
}

func (r *recordRunner) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	r.calls = append(r.calls, strings.Join(append([]string{name}, args...), " "))
	return r.r.Run(ctx, name, args...)
}
