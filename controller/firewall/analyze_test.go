package firewall

import (
	"strings"
	"testing"

	"github.com/kvmnet/kvmnet/controller/snapshot"
)

func TestSnapshot(t *testing.T) {
	sc := scenarios(t)
	ufwDefaults := map[string]string{"DEFAULT_FORWARD_POLICY": "DROP"}
	sc["ufw"].UFWDefaults = ufwDefaults
	sc["ufw+libvirt10"].UFWDefaults = ufwDefaults
	sc["ufw fixed"].UFWDefaults = ufwDefaults
	tests := []struct {
		scenario string
		check    func(t *testing.T, fw snapshot.Firewall)
	}{
		{"libvirt9", func(t *testing.T, fw snapshot.Firewall) {
			want := "LIBVIRT_FWI,LIBVIRT_FWO,LIBVIRT_FWX,LIBVIRT_INP,LIBVIRT_OUT,LIBVIRT_PRT"
			if strings.Join(fw.LibvirtChains, ",") != want || fw.Backend != "iptables-nft" || fw.LibvirtNFTable {
				t.Fatalf("libvirt chains %v backend %s", fw.LibvirtChains, fw.Backend)
			}
			if strings.Join(fw.Masquerade, ",") != "192.168.122.0/24" || fw.ForwardPolicy != "ACCEPT" || fw.ForwardPolicySetBy != "" {
				t.Fatalf("masq %v policy %s by %s", fw.Masquerade, fw.ForwardPolicy, fw.ForwardPolicySetBy)
			}
			for _, f := range fw.Flows {
				if f.Verdict != snapshot.VerdictAccept {
					t.Fatalf("flow %s: %s by %s", f.Description, f.Verdict, f.Rule)
				}
			}
			eg := flowsByKind(fw, "egress")
			if len(eg) != 2 || eg[0].NAT != "masquerade" || !strings.Contains(eg[0].NATRule, "LIBVIRT_PRT") || eg[1].DPort != 443 {
				t.Fatalf("egress flows %+v", eg)
			}
			if len(flowsByKind(fw, "dhcp")) != 1 || len(flowsByKind(fw, "dns")) != 2 || len(flowsByKind(fw, "return")) != 1 {
				t.Fatalf("flows: %+v", fw.Flows)
			}
			if !strings.Contains(fw.Evidence, "libvirt_chains=6") || !strings.Contains(fw.Evidence, "masquerade=192.168.122.0/24") {
				t.Fatalf("evidence %q", fw.Evidence)
			}
		}},
		{"ufw+libvirt10", func(t *testing.T, fw snapshot.Firewall) {
			if !fw.UFW.Enabled || fw.UFW.DefaultRouted != "deny" || len(fw.UFW.RouteAllows) != 0 {
				t.Fatalf("ufw %+v", fw.UFW)
			}
			if !fw.LibvirtNFTable || len(fw.LibvirtChains) != 0 || fw.Backend != "nftables" || strings.Join(fw.Backends, ",") != "iptables-nft,nftables" {
				t.Fatalf("libvirt nft %v chains %v backend %s %v", fw.LibvirtNFTable, fw.LibvirtChains, fw.Backend, fw.Backends)
			}
			if fw.ForwardPolicy != "DROP" || fw.ForwardPolicySetBy != "ufw" {
				t.Fatalf("policy %s by %s", fw.ForwardPolicy, fw.ForwardPolicySetBy)
			}
			eg := flowsByKind(fw, "egress")[0]
			if eg.Verdict != snapshot.VerdictDrop || eg.Rule != "policy DROP of FORWARD" || eg.Chain != "iptables-nft filter FORWARD" || eg.NAT != "masquerade" {
				t.Fatalf("egress %+v", eg)
			}
			if d := flowsByKind(fw, "dhcp")[0]; d.Verdict != snapshot.VerdictDrop || !strings.Contains(d.Chain, "ufw-skip-to-policy-input") {
				t.Fatalf("dhcp %+v", d)
			}
		}},
		{"ufw fixed", func(t *testing.T, fw snapshot.Firewall) {
			if strings.Join(fw.UFW.RouteAllows, ",") != "in on virbr0 out on eth0" || strings.Join(fw.UFW.InputAllows, ",") != "in on virbr0" {
				t.Fatalf("ufw %+v", fw.UFW)
			}
			for _, f := range fw.Flows {
				if f.Verdict != snapshot.VerdictAccept {
					t.Fatalf("flow %s: %s by %s", f.Description, f.Verdict, f.Rule)
				}
			}
			if eg := flowsByKind(fw, "egress")[0]; eg.NAT != "" || eg.NATRule != "no source NAT rule matched" {
				t.Fatalf("ufw alone has no NAT: %+v", eg)
			}
		}},
		{"docker+libvirt10", func(t *testing.T, fw snapshot.Firewall) {
			if !fw.Docker || fw.ForwardPolicy != "DROP" || fw.ForwardPolicySetBy != "docker" || fw.UFW.Enabled {
				t.Fatalf("docker %v policy %s by %s", fw.Docker, fw.ForwardPolicy, fw.ForwardPolicySetBy)
			}
			if strings.Join(fw.Masquerade, ",") != "172.17.0.0/16,192.168.122.0/24" {
				t.Fatalf("masquerade %v", fw.Masquerade)
			}
			if eg := flowsByKind(fw, "egress")[0]; eg.Verdict != snapshot.VerdictDrop || eg.Rule != "policy DROP of FORWARD" {
				t.Fatalf("egress %+v", eg)
			}
		}},
		{"flushed", func(t *testing.T, fw snapshot.Firewall) {
			if len(fw.LibvirtChains) != 0 || fw.LibvirtNFTable || len(fw.Masquerade) != 0 {
				t.Fatalf("flushed: %+v", fw)
			}
			if eg := flowsByKind(fw, "egress")[0]; eg.Verdict != snapshot.VerdictAccept || eg.NAT != "" {
				t.Fatalf("egress %+v", eg)
			}
			if !strings.Contains(fw.Evidence, "libvirt_chains=0") || !strings.Contains(fw.Evidence, "masquerade=-") {
				t.Fatalf("evidence %q", fw.Evidence)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.scenario, func(t *testing.T) {
			fw := sc[tc.scenario].Snapshot([]snapshot.Network{defaultNet()}, "eth0")
			if !fw.Read {
				t.Fatal("Read false")
			}
			tc.check(t, fw)
		})
	}
}

func TestNetworkFlowsSkips(t *testing.T) {
	st := scenarios(t)["libvirt9"]
	inactive := defaultNet()
	inactive.Active = false
	bridged := snapshot.Network{Name: "host-bridge", Active: true, Forward: snapshot.ForwardBridge, Bridge: "br0"}
	noDHCP := defaultNet()
	noDHCP.IPs[0].DHCPRanges = nil
	tests := []struct {
		name string
		net  snapshot.Network
		want int
	}{
		{"inactive", inactive, 0},
		{"bridged without ip", bridged, 0},
		{"no dhcp", noDHCP, 5},
		{"default", defaultNet(), 6},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := st.NetworkFlows(tc.net, "eth0"); len(got) != tc.want {
				t.Fatalf("%d flows, want %d: %+v", len(got), tc.want, got)
			}
		})
	}
}

func BenchmarkEvaluateUFW(b *testing.B) {
	st := &State{IPTablesNFT: mustIPT(b, "ufw-enabled.rules", "nft"), NFTables: mustNFT(b, "libvirt10-nat.nft.json")}
	p := egress(80)
	b.ReportAllocs()
	for b.Loop() {
		st.Evaluate(HookForward, p)
	}
}

func BenchmarkParseIptablesSave(b *testing.B) {
	text := string(readTestdata(b, "ufw-enabled.rules"))
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		if _, err := ParseIptablesSave(text, "nft"); err != nil {
			b.Fatal(err)
		}
	}
}
