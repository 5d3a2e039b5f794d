package link

import (
	"net"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/kvmnet/kvmnet/agent/checks"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// The Discoverer is the route source of RunChecks (empty PING targets ping its default gateway).
var _ checks.RouteSource = (*Discoverer)(nil)

func cidr(t *testing.T, s string) *net.IPNet {
	t.Helper()
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestConvertRoute(t *testing.T) {
	names := map[int]string{2: "enp1s0", 3: "enp2s0"}
	tests := []struct {
		name   string
		route  netlink.Route
		family int
		want   []*kvmnetv1.Route
	}{
		{
			name:   "v4 default nil dst",
			route:  netlink.Route{Type: unix.RTN_UNICAST, LinkIndex: 2, Gw: net.ParseIP("192.168.122.1"), Priority: 100, Protocol: unix.RTPROT_DHCP},
			family: netlink.FAMILY_V4,
			want:   []*kvmnetv1.Route{{Family: 4, Destination: "default", Gateway: "192.168.122.1", Interface: "enp1s0", Metric: 100, Protocol: "dhcp"}},
		},
		{
			name:   "v4 default explicit 0/0",
			route:  netlink.Route{Type: unix.RTN_UNICAST, LinkIndex: 2, Dst: cidr(t, "0.0.0.0/0"), Gw: net.ParseIP("10.0.0.1"), Protocol: unix.RTPROT_STATIC},
			family: netlink.FAMILY_V4,
			want:   []*kvmnetv1.Route{{Family: 4, Destination: "default", Gateway: "10.0.0.1", Interface: "enp1s0", Protocol: "static"}},
		},
		{
			name:   "v4 on-link",
			route:  netlink.Route{Type: unix.RTN_UNICAST, LinkIndex: 3, Dst: cidr(t, "192.168.100.0/24"), Protocol: unix.RTPROT_KERNEL, Priority: 101},
			family: netlink.FAMILY_V4,
			want:   []*kvmnetv1.Route{{Family: 4, Destination: "192.168.100.0/24", Interface: "enp2s0", Metric: 101, Protocol: "kernel"}},
		},
		{
			name: "v4 multipath",
			route: netlink.Route{Type: unix.RTN_UNICAST, Protocol: unix.RTPROT_STATIC, MultiPath: []*netlink.NexthopInfo{
				{LinkIndex: 2, Gw: net.ParseIP("10.0.0.1")}, {LinkIndex: 3, Gw: net.ParseIP("10.0.1.1")},
			}},
			family: netlink.FAMILY_V4,
			want: []*kvmnetv1.Route{
				{Family: 4, Destination: "default", Gateway: "10.0.0.1", Interface: "enp1s0", Protocol: "static"},
				{Family: 4, Destination: "default", Gateway: "10.0.1.1", Interface: "enp2s0", Protocol: "static"},
			},
		},
		{
			name:   "v6 default from RA",
			route:  netlink.Route{Type: unix.RTN_UNICAST, LinkIndex: 2, Dst: cidr(t, "::/0"), Gw: net.ParseIP("fe80::1"), Priority: 1024, Protocol: unix.RTPROT_RA},
			family: netlink.FAMILY_V6,
			want:   []*kvmnetv1.Route{{Family: 6, Destination: "default", Gateway: "fe80::1", Interface: "enp1s0", Metric: 1024, Protocol: "ra"}},
		},
		{
			name:   "v6 multicast left out",
			route:  netlink.Route{Type: unix.RTN_MULTICAST, LinkIndex: 2, Dst: cidr(t, "ff00::/8")},
			family: netlink.FAMILY_V6,
			want:   nil,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := convertRoute(tc.route, tc.family, names)
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if !proto.Equal(got[i], tc.want[i]) {
					t.Fatalf("route %d = %v, want %v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestLinkEvent(t *testing.T) {
	up := linkState{name: "enp1s0", adminUp: true, oper: "up", carrier: true, mtu: 1500, mac: "52:54:00:00:00:01"}
	down := up
	down.oper, down.carrier = "down", false
	mtu := up
	mtu.mtu = 9000
	renamed := up
	renamed.name = "eth0"
	tests := []struct {
		name       string
		old        linkState
		known      bool
		cur        linkState
		wantPrefix string
	}{
		{"new link", linkState{}, false, up, "enp1s0 added (admin=up oper=up carrier=yes"},
		{"repeat is silent", up, true, up, ""},
		{"carrier lost", up, true, down, "enp1s0 down (admin=up oper=down carrier=no"},
		{"carrier back", down, true, up, "enp1s0 up ("},
		{"mtu", up, true, mtu, "enp1s0 changed (admin=up oper=up carrier=yes mtu=9000"},
		{"rename", up, true, renamed, "enp1s0 renamed to eth0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := linkEvent(tc.old, tc.known, tc.cur)
			if tc.wantPrefix == "" {
				if got != "" {
					t.Fatalf("got %q, want no event", got)
				}
				return
			}
			if len(got) < len(tc.wantPrefix) || got[:len(tc.wantPrefix)] != tc.wantPrefix {
				t.Fatalf("got %q, want prefix %q", got, tc.wantPrefix)
			}
		})
	}
}
