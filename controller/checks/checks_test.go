package checks

import (
	"slices"
	"testing"
	"time"

	"github.com/kvmnet/kvmnet/controller/snapshot"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

const testMAC = "52:54:00:aa:bb:01"

func guestState() *kvmnetv1.GuestState {
	return &kvmnetv1.GuestState{
		Interfaces: []*kvmnetv1.Interface{{Name: "enp1s0", Mac: "52:54:00:AA:BB:01", OperState: "up", Carrier: true,
			Ipv4: []string{"192.168.122.50/24"}, DefaultRouteV4: true}},
		Routes: []*kvmnetv1.Route{{Family: 4, Destination: "default", Gateway: "192.168.122.1", Interface: "enp1s0"}},
		Ipv6:   &kvmnetv1.IPv6State{},
	}
}

func TestStatus(t *testing.T) {
	nets := snapshot.Networks{{Name: "default", Active: true, Forward: snapshot.ForwardNAT, Bridge: "virbr0", DNSEnabled: true,
		IPs: []snapshot.NetworkIP{{Family: 4, Address: "192.168.122.1", Prefix: 24, Subnet: "192.168.122.0/24"}}}}
	dom := snapshot.Domain{Name: "vm1", State: "running", NICs: []snapshot.DomainNIC{{MAC: testMAC, Type: "network", Network: "default"}}}
	bridged := snapshot.Domain{Name: "vm1", State: "running", NICs: []snapshot.DomainNIC{{MAC: testMAC, Type: "bridge", Bridge: "virbr0"}}}
	names := func(cs []*kvmnetv1.Check) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.GetName()+"("+c.GetFamily().String()+" "+c.GetTarget()+")")
		}
		return out
	}
	v6 := guestState()
	v6.Ipv6 = &kvmnetv1.IPv6State{HasGlobalAddress: true, HasDefaultRoute: true}
	noRoute := guestState()
	noRoute.Routes, noRoute.Interfaces[0].DefaultRouteV4 = nil, false
	for _, tc := range []struct {
		name string
		st   *kvmnetv1.GuestState
		dom  snapshot.Domain
		t    Targets
		want []string
	}{
		{"IPv4 guest on a NAT network", guestState(), dom, Targets{}, []string{
			"gateway-v4(FAMILY_V4 )", "dnsmasq-tcp(FAMILY_V4 192.168.122.1:53)", "dns-v4(FAMILY_V4 deb.debian.org)", "egress-v4(FAMILY_V4 deb.debian.org:80)"}},
		{"type=bridge NIC on the network's bridge", guestState(), bridged, Targets{}, []string{
			"gateway-v4(FAMILY_V4 )", "dnsmasq-tcp(FAMILY_V4 192.168.122.1:53)", "dns-v4(FAMILY_V4 deb.debian.org)", "egress-v4(FAMILY_V4 deb.debian.org:80)"}},
		{"user targets and a URL", guestState(), dom, Targets{DNSName: "example.org", Egress: []string{"203.0.113.1:443"}, URLs: []string{"http://203.0.113.1/"}}, []string{
			"gateway-v4(FAMILY_V4 )", "dnsmasq-tcp(FAMILY_V4 192.168.122.1:53)", "dns-v4(FAMILY_V4 example.org)", "egress-v4(FAMILY_V4 203.0.113.1:443)",
			"http-v4(FAMILY_V4 http://203.0.113.1/)"}},
		{"the check name is the one setting: egress follows it", guestState(), dom, Targets{DNSName: "mirror.example"}, []string{
			"gateway-v4(FAMILY_V4 )", "dnsmasq-tcp(FAMILY_V4 192.168.122.1:53)", "dns-v4(FAMILY_V4 mirror.example)", "egress-v4(FAMILY_V4 mirror.example:80)"}},
		{"global IPv6 adds the v6 variants", v6, dom, Targets{}, []string{
			"gateway-v4(FAMILY_V4 )", "dnsmasq-tcp(FAMILY_V4 192.168.122.1:53)", "dns-v4(FAMILY_V4 deb.debian.org)", "egress-v4(FAMILY_V4 deb.debian.org:80)",
			"gateway-v6(FAMILY_V6 )", "dns-v6(FAMILY_V6 deb.debian.org)", "egress-v6(FAMILY_V6 deb.debian.org:80)"}},
		{"no default route: no checks", noRoute, dom, Targets{}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Status(tc.st, tc.dom, nets, tc.t, 10*time.Second)
			if !slices.Equal(names(got), tc.want) {
				t.Errorf("checks = %v\nwant %v", names(got), tc.want)
			}
			for _, c := range got {
				if c.GetTimeoutMs() != 3000 {
					t.Errorf("%s timeout %d ms, want 3000", c.GetName(), c.GetTimeoutMs())
				}
			}
		})
	}
	// A short budget shrinks the check timeouts so results come back before the deadline.
	for _, c := range Status(guestState(), dom, nets, Targets{}, time.Second) {
		if c.GetTimeoutMs() != 800 {
			t.Errorf("with 1s left, %s timeout = %d ms, want 800", c.GetName(), c.GetTimeoutMs())
		}
	}
}
