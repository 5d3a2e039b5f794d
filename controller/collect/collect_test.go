package collect

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kvmnet/kvmnet/controller/diagnose"
	"github.com/kvmnet/kvmnet/controller/snapshot"
)

func TestEndpoints(t *testing.T) {
	ch := snapshot.Channel{Name: snapshot.ChannelKvmnet, Type: "unix", Path: "/var/lib/kvmnet/channels/vm1.sock", State: "connected"}
	qga := snapshot.Channel{Name: snapshot.ChannelQemuGA, Type: "unix", Path: "/x/qga.sock"}
	for _, tc := range []struct {
		name string
		dom  snapshot.Domain
		want []Endpoint
	}{
		{"none", snapshot.Domain{Channels: []snapshot.Channel{qga}}, nil},
		{"virtio-serial", snapshot.Domain{Channels: []snapshot.Channel{qga, ch}},
			[]Endpoint{{snapshot.TransportVirtioSerial, serialAddr("/var/lib/kvmnet/channels/vm1.sock"), false}}},
		{"vsock first, then the channel", snapshot.Domain{VsockCID: 5, Channels: []snapshot.Channel{ch}},
			[]Endpoint{{snapshot.TransportVsock, snapshot.AgentAddr{Scheme: "vsock", CID: 5, Port: 7531}, false},
				{snapshot.TransportVirtioSerial, serialAddr("/var/lib/kvmnet/channels/vm1.sock"), false}}},
		{"reserved CID ignored", snapshot.Domain{VsockCID: 2}, nil},
		{"disconnected channel", snapshot.Domain{Channels: []snapshot.Channel{{Name: snapshot.ChannelKvmnet, Type: "unix", Path: "/p", State: "disconnected"}}},
			[]Endpoint{{snapshot.TransportVirtioSerial, serialAddr("/p"), true}}},
		{"pty channel has no socket", snapshot.Domain{Channels: []snapshot.Channel{{Name: snapshot.ChannelKvmnet, Type: "pty"}}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Endpoints(tc.dom); !slices.Equal(got, tc.want) {
				t.Errorf("Endpoints = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestCollect(t *testing.T) {
	dir := t.TempDir()
	ok := &fakeAgent{state: guestState("vm1")}
	okSock := startAgent(t, dir, "vm1", ok)
	lv := &fakeLibvirt{uri: "qemu:///system", nets: []snapshot.Network{defaultNet()}, domErr: errors.New("domain broken: xml unreadable")}
	lv.doms = []snapshot.Domain{
		runningDomain("vm1", okSock),
		runningDomain("nochan", ""),
		{Name: "off", State: "shut off", Channels: []snapshot.Channel{{Name: snapshot.ChannelKvmnet, Type: "unix", Path: "/nonexistent.sock"}}},
		runningDomain("refused", dir+"/nobody.sock"),
		{Name: "quiet", State: "running", Channels: []snapshot.Channel{{Name: snapshot.ChannelKvmnet, Type: "unix", Path: dir + "/q.sock", State: "disconnected"}}},
	}
	var hostNets []string
	host := HostNetFunc(func(ctx context.Context, nets []snapshot.Network) (snapshot.Host, error) {
		for _, n := range nets {
			hostNets = append(hostNets, n.Name)
		}
		return snapshot.Host{Uplink: "eth0", IPForward: true, IPForwardKnown: true}, nil
	})
	var fwUplink string
	var fwDomains int
	fw := FirewallFunc(func(ctx context.Context, in FirewallInput) (snapshot.Firewall, error) {
		fwUplink, fwDomains = in.Uplink, len(in.Domains)
		return snapshot.Firewall{Read: true, Backend: "iptables-nft"}, nil
	})
	access := accessFunc(func(doms []snapshot.Domain) error {
		for i := range doms {
			if doms[i].Name == "vm1" {
				doms[i].ChannelAccess = &snapshot.SocketAccess{Path: okSock, Everyone: true}
			}
		}
		return errors.New("domain refused: stat: permission denied")
	})
	now := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	c, err := New(Sources{Libvirt: lv, HostNet: host, Firewall: fw, Access: access, Agents: unixDialer()},
		Options{Timeout: 5 * time.Second, Checks: true, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !s.TakenAt.Equal(now) || s.URI != "qemu:///system" || !s.Host.Read || s.Host.Uplink != "eth0" || fwUplink != "eth0" || fwDomains != len(s.Domains) ||
		!slices.Equal(hostNets, []string{"default"}) || !s.Firewall.Read {
		t.Errorf("host/firewall wiring wrong: %+v %+v uplink to firewall %q", s.Host, s.Firewall, fwUplink)
	}
	if len(s.Guests) != len(lv.doms) {
		t.Fatalf("guests = %d, want %d", len(s.Guests), len(lv.doms))
	}
	g := s.Guests[0]
	if !g.Reachable || g.State.GetHostname() != "vm1" || g.Transport != snapshot.TransportVirtioSerial || g.Address != "serial:"+okSock || len(g.Checks) != 4 {
		t.Errorf("vm1: %+v", g)
	}
	if s.Domains[0].ChannelAccess == nil || !s.Domains[0].ChannelAccess.Everyone {
		t.Errorf("channel access not copied back: %+v", s.Domains[0].ChannelAccess)
	}
	for i, want := range []struct {
		transport snapshot.AgentTransport
		errPart   string
	}{
		{snapshot.TransportNone, ""},
		{snapshot.TransportVirtioSerial, "domain is shut off"},
		{snapshot.TransportVirtioSerial, "nobody.sock"},
		{snapshot.TransportVirtioSerial, "channel disconnected"},
	} {
		g := s.Guests[i+1]
		if g.Reachable || g.Transport != want.transport || !strings.Contains(g.Error, want.errPart) {
			t.Errorf("%s: reachable=%v transport=%s error=%q, want %s and %q", g.Domain, g.Reachable, g.Transport, g.Error, want.transport, want.errPart)
		}
	}
	for _, e := range []string{"domain broken: xml unreadable", "channel socket access: domain refused: stat: permission denied"} {
		if !slices.Contains(s.Errors, e) {
			t.Errorf("Errors lack %q: %q", e, s.Errors)
		}
	}
	// The snapshot diagnoses: vm1 healthy apart from its exposed socket.
	r := diagnose.Diagnose(s)
	g1, _ := r.Guest("vm1")
	if g1.NICs[0].GuestIfname != "enp1s0" || g1.NICs[0].Checks != "gw=ok dns=ok dnsmasq=ok egress=ok" {
		t.Errorf("diagnosed row: %+v", g1.NICs[0])
	}
}

type accessFunc func(doms []snapshot.Domain) error

func (f accessFunc) FillChannelAccess(doms []snapshot.Domain) error { return f(doms) }

func TestCollectErrors(t *testing.T) {
	t.Run("libvirt listing fails", func(t *testing.T) {
		c, _ := New(Sources{Libvirt: &fakeLibvirt{uri: "qemu:///system", netErr: errors.New("connection reset")}}, Options{})
		if _, err := c.Collect(context.Background()); err == nil || !strings.Contains(err.Error(), "connection reset") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("libvirt hangs: bounded by the timeout", func(t *testing.T) {
		c, _ := New(Sources{Libvirt: &fakeLibvirt{uri: "qemu:///system", blockDomains: true}}, Options{Timeout: 200 * time.Millisecond})
		start := time.Now()
		_, err := c.Collect(context.Background())
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want deadline exceeded", err)
		}
		if el := time.Since(start); el > 5*time.Second {
			t.Errorf("Collect returned after %s", el)
		}
	})
	t.Run("remote URI: host facts not read locally", func(t *testing.T) {
		called := false
		host := HostNetFunc(func(context.Context, []snapshot.Network) (snapshot.Host, error) {
			called = true
			return snapshot.Host{}, nil
		})
		c, _ := New(Sources{Libvirt: &fakeLibvirt{uri: "qemu+ssh://h/system", remote: true}, HostNet: host}, Options{})
		s, err := c.Collect(context.Background())
		if err != nil || called || s.Host.Read || s.Firewall.Read || !strings.Contains(s.Firewall.Error, "remote") {
			t.Errorf("err=%v called=%v host=%+v fw=%+v", err, called, s.Host, s.Firewall)
		}
	})
	t.Run("host source error recorded", func(t *testing.T) {
		host := HostNetFunc(func(context.Context, []snapshot.Network) (snapshot.Host, error) {
			return snapshot.Host{}, errors.New("netlink: operation not permitted")
		})
		fw := FirewallFunc(func(context.Context, FirewallInput) (snapshot.Firewall, error) {
			return snapshot.Firewall{}, errors.New("iptables-save: not found")
		})
		c, _ := New(Sources{Libvirt: &fakeLibvirt{uri: "qemu:///system"}, HostNet: host, Firewall: fw}, Options{})
		s, err := c.Collect(context.Background())
		if err != nil || s.Host.Read || s.Firewall.Read || s.Firewall.Error != "iptables-save: not found" || len(s.Errors) != 2 {
			t.Errorf("err=%v host=%+v fw=%+v errors=%q", err, s.Host, s.Firewall, s.Errors)
		}
	})
	t.Run("selection", func(t *testing.T) {
		lv := fleet(t, 3)
		c, _ := New(Sources{Libvirt: lv, Agents: unixDialer()}, Options{Domains: []string{"vm001"}})
		s, err := c.Collect(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if s.Guests[0].Reachable || !s.Guests[1].Reachable || s.Guests[2].Reachable || s.Guests[0].Error != "not selected" {
			t.Errorf("selection: %+v", s.Guests)
		}
		if err := SelectDomains(s, []string{"vm001", "ghost"}); !errors.Is(err, ErrNoDomain) || !strings.Contains(err.Error(), "ghost") {
			t.Errorf("SelectDomains err = %v", err)
		}
	})
	t.Run("no libvirt source", func(t *testing.T) {
		if _, err := New(Sources{}, Options{}); err == nil {
			t.Error("New without libvirt source succeeded")
		}
	})
}

// TestHungGuestBounded: 50 real gRPC agents on unix sockets, one of which never answers GetState
// (it ignores its context). Collect returns within the timeout plus 10%, with every other guest
// answered, and the hung one reported as such.
func TestHungGuestBounded(t *testing.T) {
	const n, hung = 50, 17
	// Generous: 49 gRPC dials + GetState + RunChecks under -race on a shared 2-core machine must fit.
	timeout := 10 * time.Second
	lv := fleet(t, n, hung)
	c, err := New(Sources{Libvirt: lv, Agents: unixDialer()}, Options{Timeout: timeout, Checks: true})
	if err != nil {
		t.Fatal(err)
	}
	// Load on the machine can only add time, never remove it: a run is repeated (at most three) when
	// it missed the bound, and one run within timeout + 10% proves the property. Every run must
	// still answer every healthy guest and report the hung one.
	bound := timeout + timeout/10
	var times []time.Duration
	for attempt := 1; attempt <= 3; attempt++ {
		start := time.Now()
		s, err := c.Collect(context.Background())
		elapsed := time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
		times = append(times, elapsed)
		t.Logf("run %d: collect of %d guests (1 hung) took %s (timeout %s, bound %s)", attempt, n, elapsed, timeout, bound)
		for i, g := range s.Guests {
			if i == hung {
				if g.Reachable || !strings.Contains(g.Error, "no answer within 10s") {
					t.Errorf("hung guest %s: reachable=%v error=%q", g.Domain, g.Reachable, g.Error)
				}
				continue
			}
			if !g.Reachable || g.State.GetHostname() != g.Domain || len(g.Checks) == 0 {
				t.Errorf("guest %s: reachable=%v error=%q hostname=%q checks=%d", g.Domain, g.Reachable, g.Error, g.State.GetHostname(), len(g.Checks))
			}
		}
		if elapsed <= bound || t.Failed() {
			break
		}
	}
	if slices.Min(times) > bound {
		t.Errorf("collect took %v in every run, more than timeout+10%% = %s", times, bound)
	}
}

// BenchmarkStatusFanout measures the wall time of one status run (collect with checks + diagnose)
// over N running guests, each a real gRPC agent on a unix socket.
func BenchmarkStatusFanout(b *testing.B) {
	for _, n := range []int{1, 10, 50, 100, 200} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			lv := fleet(b, n)
			c, err := New(Sources{Libvirt: lv, Agents: unixDialer()}, Options{Timeout: 30 * time.Second, Checks: true})
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				s, err := c.Collect(context.Background())
				if err != nil {
					b.Fatal(err)
				}
				r := diagnose.Diagnose(s)
				if len(r.Guests) != n || !r.Guests[n-1].Agent.Reachable {
					b.Fatalf("guest %d unreachable: %+v", n-1, r.Guests[n-1].Agent)
				}
			}
			b.ReportMetric(float64(time.Since(start).Milliseconds())/float64(b.N), "ms/status")
			b.ReportMetric(float64(n), "guests")
		})
	}
}

// A channel libvirt reports as disconnected right after another session (the agent reopening its
// port) is dialed within DisconnectedGrace; one nobody serves is reported disconnected.
func TestDisconnectedGrace(t *testing.T) {
	dir := t.TempDir()
	sock := startAgent(t, dir, "vm1", &fakeAgent{state: guestState("vm1")})
	reopening := runningDomain("vm1", sock)
	reopening.Channels[0].State = "disconnected"
	gone := runningDomain("gone", dir+"/gone.sock")
	gone.Channels[0].State = "disconnected"
	lv := &fakeLibvirt{uri: "test:///grace", nets: []snapshot.Network{defaultNet()}, doms: []snapshot.Domain{reopening, gone}}
	c, err := New(Sources{Libvirt: lv, Agents: unixDialer()}, Options{Timeout: 20 * time.Second, DisconnectedGrace: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if g := s.Guests[0]; !g.Reachable || g.State.GetHostname() != "vm1" {
		t.Errorf("reopening channel: reachable=%v error=%q, want reachable", g.Reachable, g.Error)
	}
	if g := s.Guests[1]; g.Reachable || !strings.Contains(g.Error, "channel disconnected") {
		t.Errorf("dead channel: reachable=%v error=%q, want unreachable with %q", g.Reachable, g.Error, "channel disconnected")
	}
}
