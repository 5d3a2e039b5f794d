package checks

import (
	"context"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
	"github.com/kvmnet/kvmnet/scripts/lab/testenv"
)

// onNetnsThread runs f on a thread inside ns; the thread is discarded afterwards (the goroutine
// exits locked). Sockets f creates belong to ns.
func onNetnsThread(t *testing.T, ns *testenv.Netns, f func()) {
	t.Helper()
	h, err := netns.GetFromName(ns.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		if err := netns.Set(h); err != nil {
			t.Errorf("enter %s: %v", ns.Name, err)
			return
		}
		f()
	}()
	<-done
}

func TestPingInNetns(t *testing.T) {
	testenv.Require(t, "ip", "sysctl")
	guest := testenv.NewNetns(t, "ag")
	host := testenv.NewNetns(t, "ag")
	guest.Veth("enp1s0", host, "vnet0")
	guest.MustRun("ip", "addr", "add", "10.79.0.2/24", "dev", "enp1s0")
	host.MustRun("ip", "addr", "add", "10.79.0.1/24", "dev", "vnet0")
	guest.MustRun("ip", "-6", "addr", "add", "fd00:79::2/64", "dev", "enp1s0", "nodad")
	host.MustRun("ip", "-6", "addr", "add", "fd00:79::1/64", "dev", "vnet0", "nodad")
	// Unprivileged ICMP for every group, in the guest namespace only.
	guest.MustRun("sysctl", "-w", "net.ipv4.ping_group_range=0 2147483647")

	tests := []struct {
		name string
		mode PingMode
		dst  string
		ok   bool
		want string // mode reported, or error substring
	}{
		{"datagram v4 peer", PingDatagram, "10.79.0.1", true, "datagram"},
		{"datagram v6 peer", PingDatagram, "fd00:79::1", true, "datagram"},
		{"raw v4 peer", PingRaw, "10.79.0.1", true, "raw"},
		{"raw v6 peer", PingRaw, "fd00:79::1", true, "raw"},
		{"auto prefers datagram", PingAuto, "10.79.0.1", true, "datagram"},
		{"nobody there", PingDatagram, "10.79.0.99", false, "no echo reply"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var rtt time.Duration
			var mode string
			var err error
			onNetnsThread(t, guest, func() {
				ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
				defer cancel()
				rtt, mode, err = ICMPPinger{Mode: tc.mode}.Ping(ctx, netip.MustParseAddr(tc.dst))
			})
			if tc.ok {
				if err != nil || mode != tc.want || rtt <= 0 {
					t.Fatalf("rtt=%v mode=%q err=%v", rtt, mode, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}

	// RunOne with an empty target pings the default gateway from the route source.
	r := New(Options{Routes: fakeRoutes{
		{Family: 4, Destination: "default", Gateway: "10.79.0.1", Interface: "enp1s0", Metric: 100},
		{Family: 4, Destination: "default", Gateway: "10.79.0.77", Interface: "enp1s0", Metric: 600},
	}})
	var res *kvmnetv1.CheckResult
	onNetnsThread(t, guest, func() {
		res = r.RunOne(context.Background(), &kvmnetv1.Check{Name: "gw", Kind: ping, Family: v4, TimeoutMs: 2000})
	})
	if !res.Ok || res.Address != "10.79.0.1" || !strings.Contains(res.Detail, "target=default_gateway mode=datagram") {
		t.Fatalf("gateway ping: %v", res)
	}
}
