package link

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
	"github.com/kvmnet/kvmnet/scripts/lab/testenv"
)

// guestNetns builds a "guest" namespace with three NICs named like Ubuntu, Fedora and Kali name
// them, each a veth whose peer lives in a second "host" namespace, and returns a Discoverer bound to
// the guest namespace (netlink handle and subscriptions) with a fake sysfs for drivers.
func guestNetns(t *testing.T) (*testenv.Netns, *Discoverer) {
	t.Helper()
	testenv.Require(t, "ip")
	guest := testenv.NewNetns(t, "ag")
	host := testenv.NewNetns(t, "ag")
	guest.Veth("enp1s0", host, "h0")
	guest.Veth("ens3", host, "h1")
	guest.Veth("eth0", host, "h2")
	for _, argv := range [][]string{
		{"ip", "link", "set", "enp1s0", "address", "52:54:00:AA:00:01"},
		{"ip", "link", "set", "ens3", "address", "52:54:00:AA:00:02"},
		{"ip", "link", "set", "eth0", "address", "52:54:00:AA:00:03"},
		{"ip", "addr", "add", "10.77.1.2/24", "dev", "enp1s0"},
		{"ip", "addr", "add", "192.168.77.2/24", "dev", "ens3"},
		{"ip", "-6", "addr", "add", "fd00:77::2/64", "dev", "eth0", "nodad"},
		{"ip", "route", "add", "default", "via", "10.77.1.1", "dev", "enp1s0", "metric", "100"},
		{"ip", "-6", "route", "add", "default", "via", "fd00:77::1", "dev", "eth0"},
	} {
		guest.MustRun(argv...)
	}
	sysRoot := t.TempDir()
	fakeNIC{"enp1s0", "pci0000:00/0000:00:02.0/0000:01:00.0/virtio0", "virtio", "virtio_net"}.create(t, sysRoot)

	nsh, err := netns.GetFromName(guest.Name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nsh.Close() })
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	d, err := New(Options{Handle: h, Namespace: &nsh, SysRoot: sysRoot})
	if err != nil {
		t.Fatal(err)
	}
	return guest, d
}

func TestDiscoveryInNetns(t *testing.T) {
	_, d := guestNetns(t)
	ifaces, routes, err := d.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, in := range ifaces {
		names = append(names, in.Name)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"enp1s0", "ens3", "eth0"}) {
		t.Fatalf("interfaces = %v, want exactly enp1s0 ens3 eth0 (no loopback)", names)
	}
	tests := []struct {
		mac, name, driver, pci string
		v4, v6                 string
		defV4, defV6           bool
	}{
		{"52:54:00:aa:00:01", "enp1s0", "virtio_net", "0000:01:00.0", "10.77.1.2/24", "", true, false},
		{"52:54:00:AA:00:02", "ens3", "", "", "192.168.77.2/24", "", false, false},
		{"52-54-00-aa-00-03", "eth0", "", "", "", "fd00:77::2/64", false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in, err := FindByMAC(ifaces, tc.mac)
			if err != nil {
				t.Fatal(err)
			}
			if in.Name != tc.name || in.Kind != "veth" || in.Driver != tc.driver || in.PciPath != tc.pci {
				t.Fatalf("got %v", in)
			}
			if in.Mac != strings.ToLower(strings.ReplaceAll(tc.mac, "-", ":")) {
				t.Fatalf("mac %q not lower case colon form", in.Mac)
			}
			if in.OperState != "up" || !in.Carrier || in.Mtu != 1500 {
				t.Fatalf("state: oper=%s carrier=%v mtu=%d", in.OperState, in.Carrier, in.Mtu)
			}
			if tc.v4 != "" && !slices.Contains(in.Ipv4, tc.v4) {
				t.Fatalf("ipv4 = %v, want %s", in.Ipv4, tc.v4)
			}
			if tc.v6 != "" && !slices.Contains(in.Ipv6, tc.v6) {
				t.Fatalf("ipv6 = %v, want %s", in.Ipv6, tc.v6)
			}
			if in.Ipv4Dynamic {
				t.Fatal("static address reported as dynamic")
			}
			if in.DefaultRouteV4 != tc.defV4 || in.DefaultRouteV6 != tc.defV6 {
				t.Fatalf("default route flags v4=%v v6=%v", in.DefaultRouteV4, in.DefaultRouteV6)
			}
		})
	}
	wantRoutes := []*kvmnetv1.Route{
		{Family: 4, Destination: "default", Gateway: "10.77.1.1", Interface: "enp1s0", Metric: 100, Protocol: "boot"},
		{Family: 4, Destination: "10.77.1.0/24", Interface: "enp1s0", Protocol: "kernel"},
		{Family: 6, Destination: "default", Gateway: "fd00:77::1", Interface: "eth0", Metric: 1024, Protocol: "boot"},
	}
	for _, w := range wantRoutes {
		if !slices.ContainsFunc(routes, func(r *kvmnetv1.Route) bool {
			return r.Family == w.Family && r.Destination == w.Destination && r.Gateway == w.Gateway &&
				r.Interface == w.Interface && r.Metric == w.Metric && r.Protocol == w.Protocol
		}) {
			t.Errorf("route %v missing from %v", w, routes)
		}
	}
}

func TestDynamicAddressInNetns(t *testing.T) {
	guest, d := guestNetns(t)
	// What a DHCP client installs: a finite lifetime.
	guest.MustRun("ip", "addr", "add", "10.77.5.9/24", "dev", "ens3", "valid_lft", "3600", "preferred_lft", "3600")
	ifaces, err := d.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	in, err := FindByMAC(ifaces, "52:54:00:aa:00:02")
	if err != nil {
		t.Fatal(err)
	}
	if !in.Ipv4Dynamic {
		t.Fatalf("address with a lease lifetime not reported dynamic: %v", in)
	}
}

func TestWatchInNetns(t *testing.T) {
	guest, d := guestNetns(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, err := d.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	expect := func(kind kvmnetv1.EventKind, iface, contains string) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		var seen []string
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					t.Fatalf("event channel closed while waiting for %q; seen %v", contains, seen)
				}
				seen = append(seen, ev.Summary)
				if ev.Kind == kind && ev.Interface == iface && strings.Contains(ev.Summary, contains) {
					if ev.Time == nil {
						t.Fatal("event without time")
					}
					return
				}
			case <-deadline:
				t.Fatalf("no %v event %q on %s within 10s; seen %v", kind, contains, iface, seen)
			}
		}
	}
	guest.MustRun("ip", "link", "set", "ens3", "down")
	expect(kvmnetv1.EventKind_EVENT_KIND_LINK, "ens3", "ens3 down")
	guest.MustRun("ip", "link", "set", "ens3", "up")
	expect(kvmnetv1.EventKind_EVENT_KIND_LINK, "ens3", "ens3 up")
	guest.MustRun("ip", "addr", "add", "10.77.9.2/24", "dev", "eth0")
	expect(kvmnetv1.EventKind_EVENT_KIND_ADDRESS, "eth0", "10.77.9.2/24 added on eth0")
	guest.MustRun("ip", "addr", "del", "10.77.9.2/24", "dev", "eth0")
	expect(kvmnetv1.EventKind_EVENT_KIND_ADDRESS, "eth0", "10.77.9.2/24 removed from eth0")
	guest.MustRun("ip", "link", "del", "enp1s0")
	expect(kvmnetv1.EventKind_EVENT_KIND_LINK, "enp1s0", "enp1s0 removed")

	cancel()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-events:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("event channel not closed within 5s of cancel")
		}
	}
}
