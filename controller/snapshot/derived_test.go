package snapshot

import (
	"testing"

	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

func TestParseMAC(t *testing.T) {
	if got := ParseMAC(" 52:54:00:AA:bb:0C\n"); got != "52:54:00:aa:bb:0c" {
		t.Errorf("ParseMAC = %q", got)
	}
}

func TestNetworksOfANIC(t *testing.T) {
	nets := Networks{
		{Name: "default", Active: true, Bridge: "virbr0", Forward: ForwardNAT,
			IPs: []NetworkIP{{Family: 6, Address: "fd00::1"}, {Family: 4, Address: "192.168.122.1"}}},
		{Name: "stopped", Bridge: "virbr9", Forward: ForwardNAT, IPs: []NetworkIP{{Family: 4, Address: "10.9.0.1"}}},
		{Name: "lan", Active: true, Bridge: "br0", Forward: ForwardBridge, IPs: []NetworkIP{{Family: 4, Address: "192.168.1.10"}}},
	}
	for _, tc := range []struct {
		name     string
		nic      DomainNIC
		want, ip string
		found    bool
	}{
		{"type network", DomainNIC{Type: "network", Network: "default"}, "default", "192.168.122.1", true},
		{"type network, undefined: named, not found", DomainNIC{Type: "network", Network: "gone"}, "gone", "", false},
		{"type bridge into libvirt's bridge", DomainNIC{Type: "bridge", Bridge: "virbr0"}, "default", "192.168.122.1", true},
		{"type bridge into a stopped network's bridge", DomainNIC{Type: "bridge", Bridge: "virbr9"}, "", "", false},
		{"forward mode bridge: no host address of libvirt's", DomainNIC{Type: "network", Network: "lan"}, "lan", "", true},
		{"user", DomainNIC{Type: "user"}, "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := nets.NameOf(tc.nic); got != tc.want {
				t.Errorf("NameOf = %q, want %q", got, tc.want)
			}
			n, ok := nets.Of(tc.nic)
			if ok != tc.found || n.BridgeIPv4() != tc.ip {
				t.Errorf("Of = %q %v, bridge IPv4 %q; want found %v, %q", n.Name, ok, n.BridgeIPv4(), tc.found, tc.ip)
			}
		})
	}
	if nets[0].LibvirtDHCP() {
		t.Error("a network without DHCP ranges has libvirt DHCP")
	}
	nets[2].IPs[0].DHCPRanges = []DHCPRange{{Start: "192.168.1.100", End: "192.168.1.200"}}
	if nets[2].LibvirtDHCP() {
		t.Error("a bridge-mode network's leases come from the LAN, not libvirt")
	}
}

func TestDefaultIfaceV4(t *testing.T) {
	st := &kvmnetv1.GuestState{
		Interfaces: []*kvmnetv1.Interface{{Name: "enp1s0", Mac: "52:54:00:00:00:01", DefaultRouteV4: true},
			{Name: "enp2s0", Mac: "52:54:00:00:00:02", DefaultRouteV4: true}},
		Routes: []*kvmnetv1.Route{{Family: 6, Destination: "default", Interface: "enp1s0"},
			{Family: 4, Destination: "default", Interface: "enp2s0"}, {Family: 4, Destination: "default", Interface: "enp1s0"}},
	}
	if got := DefaultIfaceV4(st); got != "enp2s0" {
		t.Errorf("with routes: %q, want the first IPv4 default route's enp2s0", got)
	}
	st.Routes = nil
	if got := DefaultIfaceV4(st); got != "enp1s0" {
		t.Errorf("from the interface flags: %q", got)
	}
	if got := DefaultIfaceV4(nil); got != "" {
		t.Errorf("no state: %q", got)
	}
	if it := GuestInterface(st, ParseMAC("52:54:00:00:00:02")); it.GetName() != "enp2s0" {
		t.Errorf("GuestInterface = %v", it)
	}
	if it := GuestInterface(st, ""); it != nil {
		t.Errorf("GuestInterface of no MAC = %v", it)
	}
}

func TestAgentAddrString(t *testing.T) {
	for a, want := range map[AgentAddr]string{
		{}:                                    "",
		{Scheme: "vsock", CID: 5, Port: 7531}: "vsock:5:7531",
		{Scheme: "serial", Path: "/x.sock"}:   "serial:/x.sock",
	} {
		if got := a.String(); got != want {
			t.Errorf("%+v: %q, want %q", a, got, want)
		}
	}
}
