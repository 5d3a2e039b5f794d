package main

import (
	"bytes"
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kvmnet/kvmnet/controller/collect"
	"github.com/kvmnet/kvmnet/controller/diagnose"
	"github.com/kvmnet/kvmnet/controller/output"
	"github.com/kvmnet/kvmnet/scripts/lab/testenv"
)

// TestHostCheckRealLibvirtd runs host check's collection (libvirt, hostnet, firewall, channel access)
// against a private libvirtd in a network + mount namespace this test creates, with a stand-in uplink
// to a peer namespace, then breaks the host one way at a time inside that namespace and checks the
// finding that names it. Nothing outside the test's namespaces is read or changed.
func TestHostCheckRealLibvirtd(t *testing.T) {
	testenv.Require(t, "ip", "unshare", "nsenter", "mount", "libvirtd", "virtlogd", "virsh", "dnsmasq", "iptables", "sysctl")
	ns := testenv.NewNetns(t, "dg")
	peer := testenv.NewNetns(t, "dg")
	ns.Veth("up0", peer, "up1")
	ns.MustRun("ip", "addr", "add", "203.0.113.2/24", "dev", "up0")
	peer.MustRun("ip", "addr", "add", "203.0.113.1/24", "dev", "up1")
	ns.MustRun("ip", "route", "add", "default", "via", "203.0.113.1")
	lv := testenv.StartLibvirtd(t, ns, testenv.LibvirtdOptions{DefaultNetwork: testenv.DefaultNetworkAutostart})
	if err := testenv.WaitFor(60*time.Second, 100*time.Millisecond, func() (bool, error) {
		out, err := lv.Virsh("net-list", "--name")
		return strings.Contains(out, "default"), err
	}); err != nil {
		t.Fatalf("default network did not come up: %v\n%s", err, lv.Output())
	}
	env := hostEnv{pid: lv.HolderPID()}
	check := func(t *testing.T) diagnose.Report {
		t.Helper()
		var stderr bytes.Buffer
		g := &Globals{Connect: lv.URI, Timeout: 30 * time.Second, Stdout: &bytes.Buffer{}, Stderr: &stderr, Getenv: func(string) string { return "" }}
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		s, r, err := collectReportIn(ctx, g, collect.Options{Timeout: g.Timeout}, env)
		if err != nil {
			t.Fatalf("collect: %v (%s)", err, stderr.String())
		}
		if len(s.Errors) > 0 {
			t.Logf("collection errors: %q", s.Errors)
		}
		return r
	}
	codesOf := func(r diagnose.Report) []diagnose.Code { return diagnose.Codes(r.HostFindings()) }

	t.Run("healthy stock default network", func(t *testing.T) {
		r := check(t)
		var b bytes.Buffer
		if err := output.New(&b, output.FormatJSON, nil).Render(r); err != nil {
			t.Fatal(err)
		}
		t.Logf("kvmnetctl host check -o json (private libvirtd in %s):\n%s", ns.Name, b.String())
		if out := os.Getenv("KVMNET_DG_HOSTCHECK_OUT"); out != "" {
			_ = os.WriteFile(out, b.Bytes(), 0o644)
		}
		if diagnose.HasErrors(r.HostFindings()) {
			t.Errorf("healthy host has error findings: %v", codesOf(r))
		}
		if len(r.Networks) != 1 {
			t.Fatalf("networks: %+v", r.Networks)
		}
		n := r.Networks[0]
		if n.Name != "default" || !n.Active || n.Forward != "nat" || n.Bridge != "virbr0" || n.Subnet != "192.168.122.0/24" ||
			n.Masquerade != "yes" || n.Egress != "accept" || n.Dnsmasq == "down" || n.Dnsmasq == "unknown" || n.Leases != 0 {
			t.Errorf("default network: %+v", n)
		}
		if r.Host.IPForward == nil || !*r.Host.IPForward || r.Host.Uplink != "up0" || !r.Host.Firewall.Read || r.Host.Firewall.LibvirtRules == "missing" {
			t.Errorf("host facts: %+v", r.Host)
		}
		if !slices.ContainsFunc(r.Host.Bridges, func(b diagnose.BridgeReport) bool { return b.Name == "virbr0" }) {
			t.Errorf("virbr0 not among bridges: %+v", r.Host.Bridges)
		}
	})

	t.Run("ip_forward off", func(t *testing.T) {
		lv.MustNsenter("sysctl", "-q", "-w", "net.ipv4.ip_forward=0")
		defer lv.MustNsenter("sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
		if got := codesOf(check(t)); !slices.Contains(got, diagnose.CodeIPForwardOff) {
			t.Errorf("codes %v lack ip_forward_off", got)
		}
	})

	t.Run("FORWARD policy DROP without libvirt's accept: egress verdict names the policy", func(t *testing.T) {
		lv.MustNsenter("iptables", "-P", "FORWARD", "DROP")
		lv.MustNsenter("iptables", "-F", "LIBVIRT_FWO")
		defer lv.MustVirsh("net-destroy", "default")
		r := check(t)
		got := codesOf(r)
		if !slices.Contains(got, diagnose.CodeForwardPolicyDrop) {
			t.Errorf("codes %v lack forward_policy_drop", got)
		}
		if r.Networks[0].Egress != "drop" || !strings.Contains(r.Networks[0].EgressRule, "policy DROP") {
			t.Errorf("egress %q by %q", r.Networks[0].Egress, r.Networks[0].EgressRule)
		}
	})

	t.Run("rules flushed", func(t *testing.T) {
		lv.MustVirsh("net-start", "default")
		for _, table := range []string{"filter", "nat", "mangle"} {
			lv.MustNsenter("iptables", "-t", table, "-F")
			lv.MustNsenter("iptables", "-t", table, "-X")
		}
		lv.MustNsenter("iptables", "-P", "FORWARD", "ACCEPT")
		got := codesOf(check(t))
		if !slices.Contains(got, diagnose.CodeLibvirtRulesMissing) || slices.Contains(got, diagnose.CodeNATMasqueradeMissing) {
			t.Errorf("codes %v: want libvirt_rules_missing (and not nat_masquerade_missing on top)", got)
		}
	})

	t.Run("network inactive", func(t *testing.T) {
		lv.MustVirsh("net-destroy", "default")
		r := check(t)
		got := codesOf(r)
		if !slices.Contains(got, diagnose.CodeNetworkInactive) || r.Networks[0].Active {
			t.Errorf("codes %v, network %+v", got, r.Networks[0])
		}
	})
}
