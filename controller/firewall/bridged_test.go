package firewall

import (
	"strings"
	"testing"

	"github.com/kvmnet/kvmnet/controller/snapshot"
)

// hostBridge is the Debian server tutorial's host: br0 carries the host's LAN address, eth0 is
// enslaved, guests' taps are vnetN.
func hostBridge() snapshot.Host {
	return snapshot.Host{Read: true, Uplink: "br0", Bridges: []snapshot.Bridge{{
		Name: "br0", OperState: "up", AdminUp: true, Addresses: []string{"192.168.1.10/24"}, Ports: []string{"eth0", "vnet0", "vnet1"},
		PortInfo: []snapshot.BridgePort{
			{Name: "eth0", Kind: "device", OperState: "up", AdminUp: true, STPState: "forwarding"},
			{Name: "vnet0", Kind: "tuntap", OperState: "up", AdminUp: true, STPState: "forwarding"},
			{Name: "vnet1", Kind: "tuntap", OperState: "up", AdminUp: true, STPState: "forwarding"},
		}}}}
}

func bridgedDomains() []snapshot.Domain {
	return []snapshot.Domain{
		{Name: "web", State: "running", NICs: []snapshot.DomainNIC{{MAC: "52:54:00:00:00:01", Type: "bridge", Bridge: "br0", Target: "vnet0"}}},
		{Name: "db", State: "running", NICs: []snapshot.DomainNIC{{MAC: "52:54:00:00:00:02", Type: "network", Network: "host-bridge", Bridge: "br0", Target: "vnet1"}}},
		{Name: "off", State: "shut off", NICs: []snapshot.DomainNIC{{MAC: "52:54:00:00:00:03", Type: "bridge", Bridge: "br0"}}},
		{Name: "nat", State: "running", NICs: []snapshot.DomainNIC{{MAC: "52:54:00:00:00:04", Type: "network", Network: "default", Bridge: "virbr0", Target: "vnet2"}}},
	}
}

func bridgedNets() []snapshot.Network {
	return []snapshot.Network{defaultNet(), {Name: "host-bridge", Active: true, Forward: snapshot.ForwardBridge, Bridge: "br0"}}
}

func TestBridgedPaths(t *testing.T) {
	paths := BridgedPaths(bridgedNets(), hostBridge(), bridgedDomains())
	if len(paths) != 2 {
		t.Fatalf("paths: %+v", paths)
	}
	web, db := paths[0], paths[1]
	if web.Domain != "web" || web.Network != "" || web.Tap != "vnet0" || web.Uplink != "eth0" || web.Guest.String() != "192.168.1.11" {
		t.Fatalf("web: %+v", web)
	}
	if db.Domain != "db" || db.Network != "host-bridge" || db.Tap != "vnet1" || db.Uplink != "eth0" {
		t.Fatalf("db: %+v", db)
	}
	h := hostBridge()
	h.Bridges[0].PortInfo = h.Bridges[0].PortInfo[1:]
	h.Bridges[0].Addresses = nil
	if p := BridgedPaths(bridgedNets(), h, bridgedDomains()); p[0].Uplink != "" || p[0].Guest != unknownGuest {
		t.Fatalf("without an uplink port: %+v", p[0])
	}
}

// TestBridgedFlows evaluates bridged guests' frames through the forward hook with br_netfilter's view
// (in/out = br0, physdev-in/out = the ports) over the golden rule sets.
func TestBridgedFlows(t *testing.T) {
	on := snapshot.BridgeNetfilter{Known: true, Loaded: true, CallIPTables: true, CallIP6Tables: true}
	off := snapshot.BridgeNetfilter{Known: true, Loaded: true}
	absent := snapshot.BridgeNetfilter{Known: true}
	docker := &State{IPTablesNFT: mustIPT(t, "docker-forward-drop.rules", "nft"), NFTables: mustNFT(t, "libvirt10-nat.nft.json")}
	tests := []struct {
		name    string
		st      *State
		bnf     snapshot.BridgeNetfilter
		domain  string
		kind    string
		port    int
		verdict snapshot.Verdict
		rule    string // substring of the deciding rule
		backend string
	}{
		{"docker drop, br_netfilter on", docker, on, "web", "egress", 80, "drop", "policy DROP of FORWARD", "iptables-nft"},
		{"docker drop cuts DHCP to the LAN too", docker, on, "web", "dhcp", 67, "drop", "policy DROP of FORWARD", "iptables-nft"},
		{"docker drop, return path", docker, on, "db", "return", 40000, "drop", "policy DROP of FORWARD", "iptables-nft"},
		{"docker drop, sysctl 0: no filtering", docker, off, "web", "egress", 80, "accept", "net.bridge.bridge-nf-call-iptables=0", "none"},
		{"docker drop, br_netfilter absent", docker, absent, "web", "egress", 443, "accept", "br_netfilter=absent", "none"},
		{"sysctl unknown: evaluated", docker, snapshot.BridgeNetfilter{}, "web", "egress", 80, "drop", "policy DROP", "iptables-nft"},
		{"DOCKER-USER physdev-is-bridged accept", &State{IPTablesNFT: mustIPT(t, "docker-bridged-fixed.rules", "nft")}, on, "web", "egress", 443, "accept", "--physdev-is-bridged", "iptables-nft"},
		{"DOCKER-USER accept covers the return", &State{IPTablesNFT: mustIPT(t, "docker-bridged-fixed.rules", "nft")}, on, "db", "return", 40000, "accept", "--physdev-is-bridged", "iptables-nft"},
		{"nwfilter drops web from vnet0", &State{IPTablesNFT: mustIPT(t, "nwfilter-physdev.rules", "nft")}, on, "web", "egress", 80, "drop", "-A FI-vnet0 -p tcp -m tcp --dport 80 -j DROP", "iptables-nft"},
		{"nwfilter lets vnet0's https out", &State{IPTablesNFT: mustIPT(t, "nwfilter-physdev.rules", "nft")}, on, "web", "egress", 443, "accept", "-A libvirt-in-post -m physdev --physdev-in vnet0 -j ACCEPT", "iptables-nft"},
		{"nwfilter: vnet1 has no filter", &State{IPTablesNFT: mustIPT(t, "nwfilter-physdev.rules", "nft")}, on, "db", "egress", 80, "accept", "", ""},
		{"legacy docker decides next to nft libvirt", &State{IPTablesNFT: mustIPT(t, "libvirt9-default.rules", "nft"),
			IPTablesLegacy: mustIPT(t, "docker-forward-drop.rules", "legacy")}, on, "web", "egress", 80, "drop", "policy DROP of FORWARD", "iptables-legacy"},
		{"libvirt9 alone accepts bridged frames", &State{IPTablesNFT: mustIPT(t, "libvirt9-default.rules", "nft")}, on, "web", "egress", 80, "accept", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			flows := tc.st.BridgedFlows(BridgedPaths(bridgedNets(), hostBridge(), bridgedDomains()), tc.bnf)
			if len(flows) != 8 {
				t.Fatalf("%d flows, want 4 per bridged NIC", len(flows))
			}
			for _, f := range flows {
				if f.Domain != tc.domain || f.Kind != tc.kind || f.DPort != tc.port {
					continue
				}
				if f.Verdict != tc.verdict || !strings.Contains(f.Rule, tc.rule) || (tc.backend != "" && f.Backend != tc.backend) ||
					!f.Bridged || f.HostBridge != "br0" || f.In != "br0" || f.Out != "br0" {
					t.Fatalf("%+v", f)
				}
				if tc.kind == "return" && (f.PhysIn != "eth0" || !strings.HasPrefix(f.PhysOut, "vnet")) {
					t.Fatalf("return path ports: %+v", f)
				}
				if !strings.HasPrefix(f.Sysctl, "net.bridge.bridge-nf-call-iptables=") && f.Sysctl != "br_netfilter=absent" {
					t.Fatalf("sysctl evidence %q", f.Sysctl)
				}
				return
			}
			t.Fatalf("no %s flow for %s port %d in %+v", tc.kind, tc.domain, tc.port, flows)
		})
	}
}

func TestBridgedFlowsBridgeFamily(t *testing.T) {
	st := &State{NFTables: &NFTables{Tables: []*NFTable{{Family: "bridge", Name: "filter",
		Chains: []*NFChain{{Name: "forward", Type: "filter", Hook: "forward", Policy: "drop"}}}}}}
	flows := st.BridgedFlows(BridgedPaths(bridgedNets(), hostBridge(), bridgedDomains()), snapshot.BridgeNetfilter{Known: true, Loaded: true})
	if len(flows) == 0 || len(flows[0].Uncertain) != 1 || !strings.Contains(flows[0].Uncertain[0], "bridge filter forward") {
		t.Fatalf("%+v", flows)
	}
}

func TestPhysdevMatches(t *testing.T) {
	bridged := Packet{BrNF: true, PhysIn: "vnet0", PhysOut: "eth0"}
	routed := Packet{BrNF: true, PhysIn: "vnet0"}
	plain := Packet{}
	tests := []struct {
		rule string
		pkt  Packet
		want bool
	}{
		{"--physdev-is-bridged", bridged, true},
		{"--physdev-is-bridged", routed, false},
		{"--physdev-is-bridged", plain, false},
		{"! --physdev-is-bridged", plain, true},
		{"! --physdev-is-bridged", routed, true},
		{"--physdev-in vnet+", bridged, true},
		{"--physdev-in vnet+", plain, false},
		{"! --physdev-in eth0", bridged, true},
		{"--physdev-out vnet0", bridged, false},
		{"--physdev-out vnet0", routed, true}, // no out port: the name test is skipped, as the kernel does
		{"--physdev-is-out", routed, false},
		{"--physdev-is-in --physdev-in vnet0", routed, true},
		{"! --physdev-is-in", bridged, false},
	}
	for _, tc := range tests {
		t.Run(tc.rule, func(t *testing.T) {
			r, err := parseRule(append(strings.Fields("-m physdev "+tc.rule), "-j", "ACCEPT"))
			if err != nil {
				t.Fatal(err)
			}
			if got := r.Physdev.matches(tc.pkt); got != tc.want {
				t.Fatalf("%s on %+v = %v", tc.rule, tc.pkt, got)
			}
		})
	}
}
