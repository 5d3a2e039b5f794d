package firewall

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/kvmnet/kvmnet/controller/runner"
	"github.com/kvmnet/kvmnet/controller/snapshot"
)

// The nft-*.json files are `nft -j list ruleset` of a real firewalld 1.3.3 (Debian 12) in a test
// namespace, with virbr0 bound to libvirt's zone (good), with a policy kvmnet-reject-fwd (ingress
// libvirt, egress ANY, target REJECT), and with the libvirt zone file removed and firewalld reloaded
// (zonemissing: virbr0 falls into the default zone public). root/ holds Debian's zone and policy
// files (firewalld's and libvirt-daemon-system 9.0's) plus admin overrides in etc.

func TestReadFirewalldConfigGolden(t *testing.T) {
	cfg, errs := ReadFirewalldConfig(os.DirFS("testdata/firewalld/root"))
	if len(errs) > 0 {
		t.Fatalf("errors: %v", errs)
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "testdata/firewalld/config.golden", append(b, '\n'))
	// The admin's etc/firewalld/zones/public.xml replaces the package's.
	if z, _ := cfg.Zone("public"); z.File != "/etc/firewalld/zones/public.xml" || !slices.Contains(z.Ports, "8080/tcp") {
		t.Errorf("public zone %+v, want the /etc override", z)
	}
	if p, _ := cfg.Policy("kvmnet-reject-fwd"); !p.Rejects() || !p.Forwards() || p.Priority != -1 {
		t.Errorf("policy %+v", p)
	}
	if p, _ := cfg.Policy("libvirt-to-host"); !p.Rejects() || p.Forwards() {
		t.Errorf("libvirt-to-host %+v: rejects, but only towards HOST", p)
	}
}

func TestFirewalldRuntimeGolden(t *testing.T) {
	for _, tc := range []struct {
		name, zone, fallback string
		policies             []string
	}{
		{name: "good", zone: "libvirt", fallback: "public", policies: []string{"allow-host-ipv6"}},
		{name: "policyreject", zone: "libvirt", fallback: "public", policies: []string{"allow-host-ipv6", "kvmnet-reject-fwd"}},
		{name: "zonemissing", zone: "public", fallback: "public", policies: []string{"allow-host-ipv6"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nt, err := ParseNftJSON(readTestdata(t, "firewalld/nft-"+tc.name+".json"))
			if err != nil {
				t.Fatal(err)
			}
			rt := FirewalldRuntimeOf(nt)
			if rt == nil {
				t.Fatal("no runtime from a ruleset with inet firewalld")
			}
			cfg := &FirewalldConfig{Runtime: rt}
			if got := cfg.ZoneOf("virbr0"); got != tc.zone {
				t.Errorf("virbr0 in zone %q, want %q", got, tc.zone)
			}
			if rt.FallbackZone != tc.fallback || !slices.Equal(rt.Policies, tc.policies) {
				t.Errorf("fallback %q policies %v, want %q %v", rt.FallbackZone, rt.Policies, tc.fallback, tc.policies)
			}
			b, _ := json.MarshalIndent(rt, "", "  ")
			checkGolden(t, "testdata/firewalld/runtime-"+tc.name+".golden", append(b, '\n'))
		})
	}
	if FirewalldRuntimeOf(&NFTables{}) != nil || FirewalldRuntimeOf(nil) != nil {
		t.Error("runtime without firewalld's table")
	}
}

func TestFirewalldChainOwner(t *testing.T) {
	for chain, want := range map[string][2]string{
		"filter_IN_libvirt_allow":                 {"zone", "libvirt"},
		"filter_IN_public":                        {"zone", "public"},
		"filter_FWD_policy_kvmnet-reject-fwd":     {"policy", "kvmnet-reject-fwd"},
		"filter_FWD_policy_kvmnet-reject-fwd_pre": {"policy", "kvmnet-reject-fwd"},
		"filter_IN_policy_allow-host-ipv6_deny":   {"policy", "allow-host-ipv6"},
		"nat_POST_libvirt-routed_post":            {"zone", "libvirt-routed"},
		"filter_FORWARD":                          {"", ""},
		"filter_INPUT_ZONES":                      {"", ""},
		"LIBVIRT_FWO":                             {"", ""},
	} {
		if k, n := FirewalldChainOwner(chain); k != want[0] || n != want[1] {
			t.Errorf("%s: (%q, %q), want %v", chain, k, n, want)
		}
	}
}

// TestFirewalldSnapshot reads each captured state the way Read does (files + table) and checks that
// the flows name the zone or policy that decided them.
func TestFirewalldSnapshot(t *testing.T) {
	for _, tc := range []struct {
		name, bridgeZone                string
		dhcp, egress                    string // verdicts
		dhcpZone, egressZone, egressPol string
		policies                        []string
	}{
		{name: "good", bridgeZone: "libvirt", dhcp: "accept", egress: "accept", dhcpZone: "libvirt", egressZone: "libvirt",
			policies: []string{"kvmnet-reject-fwd"}},
		{name: "policyreject", bridgeZone: "libvirt", dhcp: "accept", egress: "reject", dhcpZone: "libvirt", egressPol: "kvmnet-reject-fwd",
			policies: []string{"kvmnet-reject-fwd"}},
		{name: "zonemissing", bridgeZone: "public", dhcp: "reject", egress: "reject", dhcpZone: "public", egressZone: "public"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := runner.NewFake().SetOutput(string(readTestdata(t, "firewalld/nft-"+tc.name+".json")), "nft", "-j", "list", "ruleset")
			st, err := NewReader(fake, Options{Files: os.DirFS("testdata/firewalld/root")}).Read(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range fake.Calls() {
				if c[0] == "firewall-cmd" {
					t.Fatalf("the reader ran %v: it must never talk to a bus", c)
				}
			}
			fw := st.Snapshot([]snapshot.Network{defaultNet()}, "eth0")
			if !fw.Firewalld.Running || fw.Firewalld.InterfaceZones["virbr0"] != tc.bridgeZone {
				t.Fatalf("firewalld %+v, want virbr0 in %s", fw.Firewalld, tc.bridgeZone)
			}
			dhcp, egress := flowsByKind(fw, "dhcp")[0], flowsByKind(fw, "egress")[0]
			if string(dhcp.Verdict) != tc.dhcp || dhcp.FirewalldZone != tc.dhcpZone {
				t.Errorf("dhcp %s zone %q (%s), want %s %q", dhcp.Verdict, dhcp.FirewalldZone, dhcp.Chain, tc.dhcp, tc.dhcpZone)
			}
			if string(egress.Verdict) != tc.egress || egress.FirewalldZone != tc.egressZone || egress.FirewalldPolicy != tc.egressPol {
				t.Errorf("egress %s zone %q policy %q (%s), want %s %q %q", egress.Verdict, egress.FirewalldZone, egress.FirewalldPolicy,
					egress.Chain, tc.egress, tc.egressZone, tc.egressPol)
			}
			var pols []string
			for _, p := range fw.Firewalld.Policies {
				pols = append(pols, p.Name)
			}
			if !slices.Equal(pols, tc.policies) {
				t.Errorf("rejecting policies %v, want %v", pols, tc.policies)
			}
		})
	}
}

func FuzzParseFirewalldZone(f *testing.F) {
	for _, n := range []string{"libvirt", "public", "drop", "block", "trusted"} {
		b, err := os.ReadFile("testdata/firewalld/root/usr/lib/firewalld/zones/" + n + ".xml")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`<zone target="%%REJECT%%"><rule priority="x"><reject/></rule></zone>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		z, err := ParseFirewalldZone("z", data)
		if err == nil && z.Target == "" {
			t.Fatal("parsed zone without a target")
		}
	})
}

func FuzzParseFirewalldPolicy(f *testing.F) {
	for _, n := range []string{"libvirt-to-host", "libvirt-routed-in", "allow-host-ipv6"} {
		b, err := os.ReadFile("testdata/firewalld/root/usr/lib/firewalld/policies/" + n + ".xml")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`<policy priority="99999" target="DROP"/>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseFirewalldPolicy("p", data)
		if err == nil && (p.Target == "" || p.Priority < -32768 || p.Priority > 32767) {
			t.Fatalf("parsed policy %+v", p)
		}
	})
}

// checkGolden compares got with testdata file path, rewriting it under -update (this package's flag).
func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if string(want) != string(got) {
		t.Errorf("%s differs (run with -update after checking the change):\n%s", path, got)
	}
}

func TestFirewalldFixes(t *testing.T) {
	bus := FirewallCmd{Bus: "unix:path=/tmp/x/bus.sock"}
	rt := &FirewalldRuntime{InterfaceZones: map[string]string{"virbr0": "libvirt"}, FallbackZone: "public"}
	noZone := &FirewalldConfig{Runtime: &FirewalldRuntime{FallbackZone: "public"}}
	f, err := FirewalldZoneFix(noZone, "virbr0", bus)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range f.Commands {
		got = append(got, c.String())
	}
	want := []string{
		"env DBUS_SYSTEM_BUS_ADDRESS=unix:path=/tmp/x/bus.sock firewall-cmd --permanent --new-zone=libvirt",
		"env DBUS_SYSTEM_BUS_ADDRESS=unix:path=/tmp/x/bus.sock firewall-cmd --permanent --zone=libvirt --set-target=ACCEPT",
	}
	if !slices.Equal(got[:2], want) || len(got) != 8 || !strings.Contains(got[4], `'--add-rich-rule=rule priority="32767" reject'`) {
		t.Errorf("zone fix commands:\n%s", strings.Join(got, "\n"))
	}
	withZone := &FirewalldConfig{Zones: []FirewalldZone{{Name: "libvirt"}}, Runtime: rt}
	if f, _ := FirewalldZoneFix(withZone, "virbr0", FirewallCmd{}); len(f.Commands) != 2 || f.Commands[0].Argv[0] != "firewall-cmd" ||
		f.Commands[0].Check == nil {
		t.Errorf("zone fix with the zone present: %+v", f.Commands)
	}
	if _, err := FirewalldZoneFix(withZone, "vir br0", bus); err == nil {
		t.Error("accepted a bridge name with a space")
	}

	pols := []FirewalldPolicy{
		{Name: "allow-host-ipv6", Target: "CONTINUE", Priority: -15000, Ingress: []string{"ANY"}, Egress: []string{"HOST"}},
		{Name: "to-host", Target: "REJECT", Priority: -20000, Ingress: []string{"libvirt"}, Egress: []string{"HOST"}},
		{Name: "late", Target: "DROP", Priority: 100, Ingress: []string{"ANY"}, Egress: []string{"ANY"}},
		{Name: "early", Target: "REJECT", Priority: -50, Ingress: []string{"libvirt"}, Egress: []string{"public"}},
		{Name: "other", Target: "REJECT", Priority: -900, Ingress: []string{"public"}, Egress: []string{"ANY"}},
	}
	f, err = FirewalldPolicyFix(&FirewalldConfig{Policies: pols, Runtime: rt}, "virbr0", FirewallCmd{})
	if err != nil {
		t.Fatal(err)
	}
	// to-host is towards HOST only and other is not from libvirt: early (-50) is the first that rejects.
	if !strings.Contains(f.Summary, "priority -51, before early's -50") || f.Commands[0].Argv[2] != "--new-policy=kvmnet-libvirt" {
		t.Errorf("policy fix %s: %v", f.Summary, f.Commands[0].Argv)
	}
	f, _ = FirewalldPolicyFix(&FirewalldConfig{Policies: pols[2:3], Runtime: rt}, "virbr0", FirewallCmd{})
	if !strings.Contains(f.Summary, "priority -1,") {
		t.Errorf("a positive-priority policy runs after the zones: kvmnet's must still be negative: %s", f.Summary)
	}
	for name, cfg := range map[string]*FirewalldConfig{
		"no rejecting policy": {Policies: pols[:2], Runtime: rt},
		"bridge in public":    {Policies: pols, Runtime: &FirewalldRuntime{FallbackZone: "public"}},
		"lowest priority": {Policies: []FirewalldPolicy{{Name: "x", Target: "DROP", Priority: -32768, Ingress: []string{"ANY"}, Egress: []string{"ANY"}}},
			Runtime: rt},
	} {
		if _, err := FirewalldPolicyFix(cfg, "virbr0", FirewallCmd{}); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
