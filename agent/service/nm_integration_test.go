package service

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kvmnet/kvmnet/agent/config"
	"github.com/kvmnet/kvmnet/agent/link"
	"github.com/kvmnet/kvmnet/agent/nm"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
	"github.com/kvmnet/kvmnet/scripts/lab/testenv"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var binaries = []string{"ip", "dbus-daemon", "NetworkManager", "dnsmasq", "unshare"}

const (
	macA = "52:54:00:20:00:01" // enp1s0, on the DHCP bridge
	macB = "52:54:00:20:00:02" // ens3, on the DHCP bridge too
	macC = "52:54:00:20:00:03" // eth1, plugged into nothing
)

const staleEth0 = `[connection]
id=Wired eth0
uuid=6f2f0d6e-3333-4333-8333-000000000003
type=ethernet
interface-name=eth0

[ipv4]
method=auto
`

const staticEnp1s0 = `[connection]
id=office-static
uuid=6f2f0d6e-4444-4444-8444-000000000004
type=ethernet
interface-name=enp1s0

[ipv4]
method=manual
address1=10.77.0.50/24

[ipv6]
method=ignore
`

// realService runs the real service against the lab: netlink in the guest namespace, NetworkManager
// on the private bus, files and sysctls under a temporary root.
func realService(t *testing.T, lab *testenv.NMLab) *Service {
	t.Helper()
	nsh, err := netns.GetFromName(lab.Guest.Name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nsh.Close() })
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	root := t.TempDir()
	for _, d := range []string{"etc/sysctl.d", "proc/sys/net/ipv6/conf/all", "proc/sys/net/ipv6/conf/default"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	links, err := link.New(link.Options{Handle: h, Namespace: &nsh, SysRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Root = root
	s, err := New(Options{Version: "test", Config: cfg, BusAddress: lab.Bus.Address, NMCallTimeout: time.Second, Links: links})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func ensureReq(mac string, wait, timeout uint32, remove bool) *kvmnetv1.ApplyRequest {
	var acts []*kvmnetv1.Action
	if remove {
		acts = append(acts, &kvmnetv1.Action{Action: &kvmnetv1.Action_RemoveConflictingProfiles{RemoveConflictingProfiles: &kvmnetv1.RemoveConflictingProfiles{Mac: mac}}})
	}
	acts = append(acts, &kvmnetv1.Action{Action: &kvmnetv1.Action_EnsureDhcpProfile{EnsureDhcpProfile: &kvmnetv1.EnsureDHCPProfile{
		Mac: mac, Ipv6Method: kvmnetv1.IPv6Method_IPV6_METHOD_IGNORE, WaitIpv4Seconds: wait}}})
	return &kvmnetv1.ApplyRequest{Actions: acts, RollbackTimeoutSeconds: timeout}
}

func profiles(t *testing.T, s *Service) map[string]*kvmnetv1.Profile {
	t.Helper()
	st, err := s.GetState(context.Background(), &kvmnetv1.GetStateRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if !st.NetworkManager.GetRunning() {
		t.Fatalf("NetworkManager not running: %s", st.NetworkManager.GetError())
	}
	out := map[string]*kvmnetv1.Profile{}
	for _, p := range st.NetworkManager.Profiles {
		out[p.Id] = p
	}
	return out
}

func waitManaged(t *testing.T, s *Service, names ...string) {
	t.Helper()
	err := testenv.WaitFor(15*time.Second, 100*time.Millisecond, func() (bool, error) {
		st, err := s.GetState(context.Background(), &kvmnetv1.GetStateRequest{})
		if err != nil {
			return false, err
		}
		n := 0
		for _, in := range st.Interfaces {
			for _, want := range names {
				if in.Name == want && in.Stack == kvmnetv1.NetworkStack_NETWORK_STACK_NETWORK_MANAGER {
					n++
				}
			}
		}
		return n == len(names), nil
	})
	if err != nil {
		t.Fatalf("interfaces %v not reported as managed by NetworkManager: %v", names, err)
	}
}

// TestStaleProfileReplacedOnlyRequestedNICChanges covers: stale profile bound to a missing name
// (eth0 while the NIC is enp1s0) detected and replaced; a fresh NIC gets kvm-dhcp-<if> and a lease;
// two NICs, only the one with the requested MAC changes; the second apply is a no-op.
func TestStaleProfileReplacedOnlyRequestedNICChanges(t *testing.T) {
	testenv.Require(t, binaries...)
	lab := testenv.NewNMLab(t, testenv.NMLabOptions{
		NICs: []testenv.GuestNIC{{Name: "enp1s0", MAC: macA, OnBridge: true}, {Name: "ens3", MAC: macB, OnBridge: true}},
		NM:   testenv.NMOptions{Keyfiles: map[string]string{"wired-eth0.nmconnection": staleEth0}},
	})
	s := realService(t, lab)
	ctx := context.Background()
	waitManaged(t, s, "enp1s0", "ens3")

	before := profiles(t, s)
	if p := before["Wired eth0"]; p == nil || !p.BoundToMissingInterface || p.ManagedByKvmnet {
		t.Fatalf("stale profile not detected: %v", p)
	}

	start := time.Now()
	resp, err := s.Apply(ctx, ensureReq(macA, 20, 60, true))
	if err != nil {
		t.Fatalf("%v\n%s", err, lab.Report())
	}
	var lease string
	if err := testenv.WaitFor(20*time.Second, 20*time.Millisecond, func() (bool, error) {
		lease = lab.DHCP.LeaseFor(macA)
		return lease != "", nil
	}); err != nil {
		t.Fatal("no lease for enp1s0")
	}
	t.Logf("measured: Apply -> lease %s on enp1s0: %s (Apply returned after %s)", lease, time.Since(start), resp.RollbackDeadline.AsTime().Add(-60*time.Second).Sub(start))
	var summaries []string
	for _, c := range resp.Changes {
		summaries = append(summaries, c.Summary)
		t.Logf("change: %s %s: %s\n%s", c.Kind, c.Target, c.Summary, c.Diff)
	}
	all := strings.Join(summaries, "\n")
	for _, want := range []string{`delete profile "Wired eth0"`, "create profile kvm-dhcp-enp1s0", "activate kvm-dhcp-enp1s0 on enp1s0", "got " + lease + "/24"} {
		if !strings.Contains(all, want) {
			t.Errorf("changes lack %q:\n%s", want, all)
		}
	}
	if resp.CheckpointId == "" || resp.Noop {
		t.Fatalf("response %v", resp)
	}
	if _, err := s.Confirm(ctx, &kvmnetv1.ConfirmRequest{CheckpointId: resp.CheckpointId}); err != nil {
		t.Fatal(err)
	}

	after := profiles(t, s)
	kp := after["kvm-dhcp-enp1s0"]
	if kp == nil || !kp.Active || kp.ActiveDevice != "enp1s0" || !kp.ManagedByKvmnet || kp.Ipv4Method != "auto" || kp.Ipv6Method != "ignore" || !kp.Autoconnect {
		t.Fatalf("kvm-dhcp-enp1s0: %v", kp)
	}
	if after["Wired eth0"] != nil {
		t.Fatal("stale profile still there")
	}
	// The other NIC is untouched: no profile, no lease, no address.
	for id, p := range after {
		if id != "kvm-dhcp-enp1s0" && p.Type == "802-3-ethernet" {
			t.Errorf("unexpected profile %s: %v", id, p)
		}
	}
	if lab.DHCP.LeaseFor(macB) != "" || len(lab.IPv4("ens3")) != 0 {
		t.Fatalf("ens3 changed: lease %q addrs %v", lab.DHCP.LeaseFor(macB), lab.IPv4("ens3"))
	}

	again, err := s.Apply(ctx, ensureReq(macA, 20, 60, true))
	if err != nil {
		t.Fatalf("%v\n%s", err, lab.Report())
	}
	if !again.Noop || len(again.Changes) != 0 || again.CheckpointId != "" {
		t.Fatalf("second apply is not a no-op: %v", again)
	}
	// Confirmed: nothing rolls back later (NetworkManager's checkpoint is gone too).
	c := nm.Dial(lab.Bus.Address, nm.Options{})
	defer c.Close()
	if cps, err := c.Checkpoints(ctx); err != nil || len(cps) != 0 {
		t.Fatalf("checkpoints after confirm: %v %v", cps, err)
	}
}

// TestUnconfirmedApplyRollsBack: the guest's working static profile is replaced by DHCP (so the
// address the host knew is gone: broken on purpose); without Confirm, the agent's timer restores the
// static profile and address, deletes kvm-dhcp, and re-adds the inactive stale profile it deleted.
func TestUnconfirmedApplyRollsBack(t *testing.T) {
	testenv.Require(t, binaries...)
	lab := testenv.NewNMLab(t, testenv.NMLabOptions{
		NICs: []testenv.GuestNIC{{Name: "enp1s0", MAC: macA, OnBridge: true}},
		NM: testenv.NMOptions{Keyfiles: map[string]string{"static.nmconnection": staticEnp1s0,
			"wired-eth0.nmconnection": staleEth0}},
	})
	s := realService(t, lab)
	ctx := context.Background()
	staticBack := func() (bool, error) {
		ps := profiles(t, s)
		a := lab.IPv4("enp1s0")
		return ps["office-static"].GetActive() && len(a) == 1 && a[0] == "10.77.0.50/24", nil
	}
	if err := testenv.WaitFor(20*time.Second, 100*time.Millisecond, staticBack); err != nil {
		t.Fatalf("static profile not active at start: %v", lab.IPv4("enp1s0"))
	}
	resp, err := s.Apply(ctx, ensureReq(macA, 20, 10, true))
	if err != nil {
		t.Fatalf("%v\n%s", err, lab.Report())
	}
	if a := lab.IPv4("enp1s0"); len(a) != 1 || a[0] == "10.77.0.50/24" {
		t.Fatalf("after apply enp1s0 has %v, want one DHCP address", a)
	}
	if st, _ := s.GetState(ctx, &kvmnetv1.GetStateRequest{}); st.PendingCheckpoint.GetId() != resp.CheckpointId {
		t.Fatalf("pending checkpoint %v", st.PendingCheckpoint)
	}
	// No Confirm. Wait past the deadline.
	time.Sleep(time.Until(resp.RollbackDeadline.AsTime()))
	start := time.Now()
	if err := testenv.WaitFor(20*time.Second, 100*time.Millisecond, staticBack); err != nil {
		t.Fatalf("static profile/address not restored: %v; profiles %v", lab.IPv4("enp1s0"), profiles(t, s))
	}
	t.Logf("measured: restored %s after the rollback deadline", time.Since(start))
	ps := profiles(t, s)
	if ps["kvm-dhcp-enp1s0"] != nil || ps["Wired eth0"] == nil {
		t.Fatalf("after rollback: %v", ps)
	}
	if st, _ := s.GetState(ctx, &kvmnetv1.GetStateRequest{}); st.PendingCheckpoint != nil {
		t.Fatalf("checkpoint still pending: %v", st.PendingCheckpoint)
	}
	if _, err := s.Confirm(ctx, &kvmnetv1.ConfirmRequest{CheckpointId: resp.CheckpointId}); status.Code(err) != codes.NotFound {
		t.Fatalf("late confirm: %v", err)
	}
}

// TestExplicitRollbackAndFailedActivation: Rollback restores at once; an Apply whose NIC gets no
// lease fails, rolls back at once and leaves no profile behind; an unknown MAC changes nothing.
func TestExplicitRollbackAndFailedActivation(t *testing.T) {
	testenv.Require(t, binaries...)
	lab := testenv.NewNMLab(t, testenv.NMLabOptions{
		NICs: []testenv.GuestNIC{{Name: "enp1s0", MAC: macA, OnBridge: true}, {Name: "eth1", MAC: macC}},
		NM:   testenv.NMOptions{Keyfiles: map[string]string{"static.nmconnection": staticEnp1s0}},
	})
	s := realService(t, lab)
	ctx := context.Background()
	waitManaged(t, s, "enp1s0", "eth1")

	resp, err := s.Apply(ctx, ensureReq(macA, 20, 60, true))
	if err != nil {
		t.Fatalf("%v\n%s", err, lab.Report())
	}
	rb, err := s.Rollback(ctx, &kvmnetv1.RollbackRequest{CheckpointId: resp.CheckpointId})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("restored: %q", rb.Restored)
	if err := testenv.WaitFor(20*time.Second, 100*time.Millisecond, func() (bool, error) {
		a := lab.IPv4("enp1s0")
		return len(a) == 1 && a[0] == "10.77.0.50/24", nil
	}); err != nil {
		t.Fatalf("not restored: %v", lab.IPv4("enp1s0"))
	}

	start := time.Now()
	_, err = s.Apply(ctx, ensureReq(macC, 3, 60, false))
	t.Logf("measured: failed activation reported after %s: %v", time.Since(start), err)
	if status.Code(err) != codes.Aborted || !strings.Contains(err.Error(), "no IPv4 address on eth1") || !strings.Contains(err.Error(), "rolled back at once") {
		t.Fatalf("err = %v", err)
	}
	if ps := profiles(t, s); ps["kvm-dhcp-eth1"] != nil || !ps["office-static"].GetActive() {
		t.Fatalf("after failed apply: %v", ps)
	}

	_, err = s.Apply(ctx, ensureReq("52:54:00:99:99:99", 3, 60, true))
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "enp1s0="+macA) {
		t.Fatalf("unknown MAC: %v", err)
	}
}

// TestNMAbsentOrFrozen: no NetworkManager → Apply fails with a clear error within 2 s and GetState
// still answers; a frozen (SIGSTOP) NetworkManager → GetState answers within seconds with the error.
func TestNMAbsentOrFrozen(t *testing.T) {
	testenv.Require(t, binaries...)
	t.Run("absent", func(t *testing.T) {
		lab := testenv.NewNMLab(t, testenv.NMLabOptions{NoNM: true, NICs: []testenv.GuestNIC{{Name: "enp1s0", MAC: macA}}})
		s := realService(t, lab)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		start := time.Now()
		_, err := s.Apply(ctx, ensureReq(macA, 5, 60, true))
		t.Logf("measured: Apply without NetworkManager failed after %s: %v", time.Since(start), err)
		if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "NetworkManager is not running") || ctx.Err() != nil {
			t.Fatalf("err = %v", err)
		}
		st, err := s.GetState(ctx, &kvmnetv1.GetStateRequest{})
		if err != nil || st.NetworkManager.Running || !strings.Contains(st.NetworkManager.Error, "not running") || len(st.Interfaces) != 1 {
			t.Fatalf("state %v %v", st, err)
		}
	})
	t.Run("frozen", func(t *testing.T) {
		lab := testenv.NewNMLab(t, testenv.NMLabOptions{NICs: []testenv.GuestNIC{{Name: "enp1s0", MAC: macA}, {Name: "ens3", MAC: macB}}})
		s := realService(t, lab)
		waitManaged(t, s, "enp1s0", "ens3")
		if err := lab.NM.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = lab.NM.Signal(syscall.SIGCONT) }()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		start := time.Now()
		st, err := s.GetState(ctx, &kvmnetv1.GetStateRequest{})
		t.Logf("measured: GetState with frozen NetworkManager took %s: %s", time.Since(start), st.GetNetworkManager().GetError())
		if err != nil || st.NetworkManager.Running || !strings.Contains(st.NetworkManager.Error, "no answer within 1s") || ctx.Err() != nil {
			t.Fatalf("state %v %v", st.GetNetworkManager(), err)
		}
		_, err = s.Apply(ctx, ensureReq(macA, 5, 60, true))
		if status.Code(err) != codes.FailedPrecondition || ctx.Err() != nil {
			t.Fatalf("apply on frozen NM: %v", err)
		}
	})
}

// TestWatchNMAndLinkEvents: one Watch stream carries NetworkManager profile/device events and
// netlink address events from the real lab, and the checkpoint event of an Apply.
func TestWatchNMAndLinkEvents(t *testing.T) {
	testenv.Require(t, binaries...)
	lab := testenv.NewNMLab(t, testenv.NMLabOptions{NICs: []testenv.GuestNIC{{Name: "enp1s0", MAC: macA, OnBridge: true}}})
	s := realService(t, lab)
	waitManaged(t, s, "enp1s0")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream := &fakeStream{ctx: ctx, ch: make(chan *kvmnetv1.Event, 256)}
	done := make(chan error, 1)
	go func() { done <- s.Watch(&kvmnetv1.WatchRequest{}, stream) }()
	time.Sleep(200 * time.Millisecond) // let Watch subscribe (events before that are not replayed)
	resp, err := s.Apply(context.Background(), ensureReq(macA, 20, 60, false))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[kvmnetv1.EventKind]bool{}
	for !(seen[kvmnetv1.EventKind_EVENT_KIND_PROFILE] && seen[kvmnetv1.EventKind_EVENT_KIND_NETWORK_MANAGER] &&
		seen[kvmnetv1.EventKind_EVENT_KIND_ADDRESS] && seen[kvmnetv1.EventKind_EVENT_KIND_CHECKPOINT]) {
		select {
		case e := <-stream.ch:
			t.Logf("event %s %s: %s", e.Kind, e.Interface, e.Summary)
			seen[e.Kind] = true
		case <-ctx.Done():
			t.Fatalf("missing event kinds: %v", seen)
		}
	}
	if _, err := s.Confirm(context.Background(), &kvmnetv1.ConfirmRequest{CheckpointId: resp.CheckpointId}); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
