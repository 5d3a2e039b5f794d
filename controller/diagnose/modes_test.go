package diagnose

import (
	"slices"
	"strings"
	"testing"

	"github.com/kvmnet/kvmnet/controller/snapshot"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// healthyPasst is a guest whose only NIC is <interface type='user'><backend type='passt'/>: no
// libvirt network, no bridge, no lease; passt gave the guest the host's own address.
func healthyPasst() snapshot.Snapshot {
	st := guestState([]*kvmnetv1.Interface{iface("enp1s0", mac1, []string{"203.0.113.2/24"}, true)}, "203.0.113.1", dhcpProfile("enp1s0", mac1))
	return snapshot.Snapshot{
		URI:      "qemu:///system",
		Networks: []snapshot.Network{natNetwork()},
		Domains:  []snapshot.Domain{domain("vm1", snapshot.DomainNIC{MAC: mac1, Type: "user", Backend: snapshot.NICBackendPasst, Model: "virtio"})},
		Host:     baseHost(bridge("virbr0", "192.168.122.1/24")),
		Firewall: snapshot.Firewall{Backend: "iptables-nft", Backends: []string{"iptables-nft"}, Read: true, ForwardPolicy: "DROP", Docker: true,
			LibvirtChains: libvirtChains(), Masquerade: []string{"192.168.122.0/24"},
			Flows: acceptFlow("default", "192.168.122.0/24", "virbr0")},
		Guests: []snapshot.Guest{{Domain: "vm1", Transport: snapshot.TransportVirtioSerial, Reachable: true, State: st, Checks: okChecks("203.0.113.1")}},
	}
}

func TestPasstAndRouted(t *testing.T) {
	t.Run("passt: no session warning, no bridge/lease/firewall alarm even under Docker's DROP", func(t *testing.T) {
		r := Diagnose(healthyPasst())
		if codes := Codes(r.All()); len(codes) != 0 {
			t.Fatalf("codes %v", codes)
		}
		g, _ := r.Guest("vm1")
		if !g.Healthy || len(g.NICs) != 1 || g.NICs[0].Backend != "passt" || g.NICs[0].Type != "user" {
			t.Fatalf("%+v", g)
		}
	})
	t.Run("passt: the guest's own view is still judged", func(t *testing.T) {
		s := healthyPasst()
		gst(&s).Interfaces[0].Ipv4 = nil
		r := Diagnose(s)
		if codes := Codes(r.All()); !slices.Equal(codes, []Code{CodeGuestNoIPv4}) {
			t.Fatalf("codes %v", codes)
		}
	})
	t.Run("slirp user-mode still warns", func(t *testing.T) {
		s := healthyPasst()
		s.Domains[0].NICs[0].Backend = ""
		if codes := Codes(Diagnose(s).All()); !slices.Equal(codes, []Code{CodeSessionUsermodeNetwork}) {
			t.Fatalf("codes %v", codes)
		}
	})
	t.Run("routed: the return route is reported as unknown, not as a finding", func(t *testing.T) {
		r := Diagnose(healthyRouted())
		if codes := Codes(r.All()); len(codes) != 0 {
			t.Fatalf("codes %v", codes)
		}
		nr := r.Networks[0]
		if !strings.HasPrefix(nr.ReturnRoute, "unknown: the upstream router must route 192.168.100.0/24 back via this host's address on eth0") {
			t.Fatalf("return route %q", nr.ReturnRoute)
		}
		if nat := Diagnose(healthyNAT()).Networks[0]; nat.ReturnRoute != "" {
			t.Fatalf("NAT network with a return route fact: %q", nat.ReturnRoute)
		}
	})
}

func TestTwoIptablesWorlds(t *testing.T) {
	s := healthyNAT()
	s.Firewall.Backends = []string{"iptables-nft", "iptables-legacy"}
	s.Firewall.Docker, s.Firewall.ForwardPolicy, s.Firewall.ForwardPolicySetBy = true, "DROP", "docker"
	s.Firewall.Flows[0] = snapshot.Flow{Network: "default", Kind: "egress", Verdict: snapshot.VerdictDrop, Chain: "iptables-legacy filter FORWARD",
		Rule: "policy DROP of FORWARD", Backend: "iptables-legacy"}
	for _, f := range Diagnose(s).All() {
		if f.Code == CodeForwardPolicyDrop {
			if !strings.Contains(f.Summary, "decided by iptables-legacy (decided it; rules also in iptables-nft)") {
				t.Fatalf("summary does not say which world decided: %s", f.Summary)
			}
			return
		}
	}
	t.Fatal("no forward_policy_drop")
}
