package service

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gonm "github.com/Wifx/gonetworkmanager/v2"
	"github.com/godbus/dbus/v5"
	"github.com/kvmnet/kvmnet/agent/apply"
	"github.com/kvmnet/kvmnet/agent/config"
	"github.com/kvmnet/kvmnet/agent/managedfile"
	"github.com/kvmnet/kvmnet/agent/nm"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

type fakeLinks struct {
	ifaces []*kvmnetv1.Interface
	err    error
	events chan *kvmnetv1.Event
}

func (f *fakeLinks) Snapshot() ([]*kvmnetv1.Interface, []*kvmnetv1.Route, error) {
	return f.ifaces, nil, f.err
}
func (f *fakeLinks) Routes() ([]*kvmnetv1.Route, error) { return nil, nil }
func (f *fakeLinks) Watch(context.Context) (<-chan *kvmnetv1.Event, error) {
	return f.events, nil
}

// fakeNM reads only; changes fail (the unit tests here never reach NetworkManager changes).
type fakeNM struct {
	state  nm.State
	err    error
	events chan nm.Event
}

func (f *fakeNM) State(context.Context) (nm.State, error) { return f.state, f.err }
func (f *fakeNM) Devices(context.Context) ([]nm.Device, error) {
	return f.state.Devices, f.err
}
func (f *fakeNM) Subscribe(context.Context) (<-chan nm.Event, error) { return f.events, nil }
func (f *fakeNM) Close() error                                       { return nil }
func (f *fakeNM) Settings(context.Context, dbus.ObjectPath) (nm.Settings, error) {
	return nil, errors.New("fake")
}
func (f *fakeNM) AddProfile(context.Context, nm.Settings) (dbus.ObjectPath, error) {
	return "", errors.New("fake")
}
func (f *fakeNM) UpdateProfile(context.Context, dbus.ObjectPath, nm.Settings) error {
	return errors.New("fake")
}
func (f *fakeNM) DeleteProfile(context.Context, dbus.ObjectPath) error { return errors.New("fake") }
func (f *fakeNM) ProfileByUUID(context.Context, string) (dbus.ObjectPath, error) {
	return "", errors.New("fake")
}
func (f *fakeNM) Activate(context.Context, dbus.ObjectPath, dbus.ObjectPath) (dbus.ObjectPath, error) {
	return "", errors.New("fake")
}
func (f *fakeNM) WaitIPv4(context.Context, dbus.ObjectPath, dbus.ObjectPath, time.Duration) ([]string, error) {
	return nil, errors.New("fake")
}
func (f *fakeNM) CheckpointCreate(context.Context, []dbus.ObjectPath, time.Duration, gonm.NmCheckpointCreateFlags) (dbus.ObjectPath, error) {
	return "", errors.New("fake")
}
func (f *fakeNM) CheckpointDestroy(context.Context, dbus.ObjectPath) error               { return errors.New("fake") }
func (f *fakeNM) CheckpointAdjust(context.Context, dbus.ObjectPath, time.Duration) error { return nil }
func (f *fakeNM) CheckpointRollback(context.Context, dbus.ObjectPath) (map[string]uint32, error) {
	return nil, errors.New("fake")
}

type fakeStack struct{}

func (fakeStack) Annotate(_ context.Context, ifaces []*kvmnetv1.Interface) error {
	for _, in := range ifaces {
		in.Stack = kvmnetv1.NetworkStack_NETWORK_STACK_NETWORK_MANAGER
	}
	return nil
}

type fakeIPv6 struct{}

func (fakeIPv6) State([]*kvmnetv1.Interface, []*kvmnetv1.Route) (*kvmnetv1.IPv6State, error) {
	return &kvmnetv1.IPv6State{AllDisabled: true}, nil
}

type fakePkg struct{}

func (fakePkg) State() (*kvmnetv1.PackageManagerState, error) {
	return &kvmnetv1.PackageManagerState{AptForceIpv4: kvmnetv1.ConfigFileState_CONFIG_FILE_STATE_ABSENT}, nil
}

type fakeDNS struct{}

func (fakeDNS) State() (*kvmnetv1.DNSState, error) {
	return nil, errors.New("resolv.conf unreadable")
}

type fakeQGA struct{}

func (fakeQGA) State() *kvmnetv1.QemuGuestAgentState {
	return &kvmnetv1.QemuGuestAgentState{Installed: true}
}

type fakeOS struct{}

func (fakeOS) Info() (*kvmnetv1.OSInfo, error) { return &kvmnetv1.OSInfo{Id: "debian"}, nil }
func (fakeOS) Hostname() (string, error)       { return "guest1", nil }

type fakeChecks struct{}

func (fakeChecks) Run(context.Context, *kvmnetv1.RunChecksRequest) (*kvmnetv1.RunChecksResponse, error) {
	return nil, errors.New("at most 64 checks")
}

type memSysctl struct {
	mu sync.Mutex
	m  map[string]string
}

func (s *memSysctl) Get(k string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[k], nil
}
func (s *memSysctl) Set(k, v string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[k] = v
	return nil
}

func newFakeService(t *testing.T, cfg config.Config, n *fakeNM, l *fakeLinks) *Service {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc/sysctl.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	store, err := managedfile.New(managedfile.Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Root = root
	s, err := New(Options{Version: "v1.2.3", Config: cfg, NM: n, Links: l, Stack: fakeStack{}, IPv6: fakeIPv6{},
		PkgConf: fakePkg{}, DNS: fakeDNS{}, QGA: fakeQGA{}, OS: fakeOS{}, Checks: fakeChecks{}, Files: store,
		Sysctl: &memSysctl{m: map[string]string{}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func guestLinks() *fakeLinks {
	return &fakeLinks{ifaces: []*kvmnetv1.Interface{{Name: "enp1s0", Mac: "52:54:00:00:00:01"}}, events: make(chan *kvmnetv1.Event, 4)}
}

func TestGetStateAssembles(t *testing.T) {
	cfg := config.Default()
	cfg.AllowApply = false
	n := &fakeNM{state: nm.State{Status: nm.Status{Running: true, Version: "1.42.4"}, Profiles: []nm.Profile{
		{ID: "Wired eth0", UUID: "u1", Type: nm.EthernetType, InterfaceName: "eth0", IPv4Method: "auto", Autoconnect: true},
		{ID: "kvm-dhcp-enp1s0", UUID: "u2", Type: nm.EthernetType, InterfaceName: "enp1s0", IPv4Method: "auto", Active: true, ActiveDevice: "enp1s0", ManagedByKvmnet: true},
	}}}
	s := newFakeService(t, cfg, n, guestLinks())
	st, err := s.GetState(context.Background(), &kvmnetv1.GetStateRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Hostname != "guest1" || st.Os.GetId() != "debian" || st.AgentVersion != "v1.2.3" || len(st.Interfaces) != 1 ||
		st.Interfaces[0].Stack != kvmnetv1.NetworkStack_NETWORK_STACK_NETWORK_MANAGER || !st.Ipv6.GetAllDisabled() ||
		!st.QemuGuestAgent.GetInstalled() || st.CollectedAt == nil {
		t.Fatalf("state %v", st)
	}
	if st.Config.GetAllowApply() || !st.Config.GetManageProfiles() || len(st.Config.GetTransports()) != 2 {
		t.Fatalf("config %v", st.Config)
	}
	if len(st.CollectionErrors) != 1 || !strings.Contains(st.CollectionErrors[0], "dns: resolv.conf unreadable") {
		t.Fatalf("collection errors %q", st.CollectionErrors)
	}
	ps := st.NetworkManager.GetProfiles()
	if !st.NetworkManager.Running || len(ps) != 2 || !ps[0].BoundToMissingInterface || ps[1].BoundToMissingInterface || !ps[1].ManagedByKvmnet {
		t.Fatalf("nm %v", st.NetworkManager)
	}

	n.err = nm.ErrNotRunning
	st, _ = s.GetState(context.Background(), &kvmnetv1.GetStateRequest{})
	if st.NetworkManager.Running || !strings.Contains(st.NetworkManager.Error, "not running") {
		t.Fatalf("nm down: %v", st.NetworkManager)
	}
}

func TestErrorCodes(t *testing.T) {
	cfg := config.Default()
	cfg.ManagePackageManager = false
	s := newFakeService(t, cfg, &fakeNM{err: nm.ErrNotRunning}, guestLinks())
	ctx := context.Background()
	act := func(a *kvmnetv1.Action) *kvmnetv1.ApplyRequest {
		return &kvmnetv1.ApplyRequest{Actions: []*kvmnetv1.Action{a}}
	}
	tests := []struct {
		name string
		call func() error
		code codes.Code
		has  string
	}{
		{"unknown MAC", func() error {
			_, err := s.Apply(ctx, act(&kvmnetv1.Action{Action: &kvmnetv1.Action_EnsureDhcpProfile{EnsureDhcpProfile: &kvmnetv1.EnsureDHCPProfile{Mac: "52:54:00:00:00:09"}}}))
			return err
		}, codes.FailedPrecondition, "no interface with MAC 52:54:00:00:00:09"},
		{"NM not running", func() error {
			_, err := s.Apply(ctx, act(&kvmnetv1.Action{Action: &kvmnetv1.Action_EnsureDhcpProfile{EnsureDhcpProfile: &kvmnetv1.EnsureDHCPProfile{Mac: "52:54:00:00:00:01"}}}))
			return err
		}, codes.FailedPrecondition, "NetworkManager is not running"},
		{"bad MAC", func() error {
			_, err := s.Apply(ctx, act(&kvmnetv1.Action{Action: &kvmnetv1.Action_RemoveConflictingProfiles{RemoveConflictingProfiles: &kvmnetv1.RemoveConflictingProfiles{Mac: "nope"}}}))
			return err
		}, codes.InvalidArgument, "MAC"},
		{"opted out", func() error {
			_, err := s.Apply(ctx, act(&kvmnetv1.Action{Action: &kvmnetv1.Action_SetPackageManagerIpv4{SetPackageManagerIpv4: &kvmnetv1.SetPackageManagerIPv4{Force: true}}}))
			return err
		}, codes.PermissionDenied, "manage_package_manager"},
		{"confirm unknown", func() error {
			_, err := s.Confirm(ctx, &kvmnetv1.ConfirmRequest{CheckpointId: "kvmnet-x"})
			return err
		}, codes.NotFound, "kvmnet-x"},
		{"rollback unknown", func() error {
			_, err := s.Rollback(ctx, &kvmnetv1.RollbackRequest{CheckpointId: "kvmnet-x"})
			return err
		}, codes.NotFound, "none is pending"},
		{"checks invalid", func() error {
			_, err := s.RunChecks(ctx, &kvmnetv1.RunChecksRequest{})
			return err
		}, codes.InvalidArgument, "64"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if status.Code(err) != tc.code || !strings.Contains(err.Error(), tc.has) {
				t.Fatalf("err = %v, want %s containing %q", err, tc.code, tc.has)
			}
		})
	}
}

type fakeStream struct {
	grpc.ServerStream
	ctx context.Context
	ch  chan *kvmnetv1.Event
}

func (f *fakeStream) Context() context.Context     { return f.ctx }
func (f *fakeStream) Send(e *kvmnetv1.Event) error { f.ch <- e; return nil }

func TestWatchMergesSources(t *testing.T) {
	n := &fakeNM{events: make(chan nm.Event, 4)}
	l := guestLinks()
	s := newFakeService(t, config.Default(), n, l)
	ctx, cancel := context.WithCancel(context.Background())
	stream := &fakeStream{ctx: ctx, ch: make(chan *kvmnetv1.Event, 16)}
	done := make(chan error, 1)
	go func() { done <- s.Watch(&kvmnetv1.WatchRequest{}, stream) }()

	l.events <- &kvmnetv1.Event{Kind: kvmnetv1.EventKind_EVENT_KIND_LINK, Interface: "enp1s0", Summary: "enp1s0 up"}
	n.events <- nm.Event{Kind: nm.EventProfile, Summary: "profile added: kvm-dhcp-enp1s0"}
	n.events <- nm.Event{Kind: nm.EventState, Interface: "enp1s0", Summary: "enp1s0: a -> b"}
	// A checkpoint event: a files-only Apply (disable IPv6) publishes "checkpoint ... created".
	waitSubscribed := time.Now()
	var resp *kvmnetv1.ApplyResponse
	got := map[kvmnetv1.EventKind]string{}
	for len(got) < 4 {
		if resp == nil && len(got) >= 3 {
			var err error
			resp, err = s.Apply(context.Background(), &kvmnetv1.ApplyRequest{Actions: []*kvmnetv1.Action{{Action: &kvmnetv1.Action_SetIpv6{SetIpv6: &kvmnetv1.SetIPv6{Disable: true}}}}})
			if err != nil {
				t.Fatal(err)
			}
		}
		select {
		case e := <-stream.ch:
			got[e.Kind] = e.Summary
			if e.Time == nil {
				t.Fatalf("event without time: %v", e)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("events so far %v (waited since %s)", got, waitSubscribed)
		}
	}
	if !strings.Contains(got[kvmnetv1.EventKind_EVENT_KIND_CHECKPOINT], resp.CheckpointId+" created") ||
		got[kvmnetv1.EventKind_EVENT_KIND_PROFILE] != "profile added: kvm-dhcp-enp1s0" || got[kvmnetv1.EventKind_EVENT_KIND_LINK] != "enp1s0 up" {
		t.Fatalf("events %v", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Watch returned %v after the client left", err)
	}
	if _, err := s.Rollback(context.Background(), &kvmnetv1.RollbackRequest{CheckpointId: resp.CheckpointId}); err != nil {
		t.Fatal(err)
	}
}

var _ apply.NM = (*fakeNM)(nil)
