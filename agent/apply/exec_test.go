package apply

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gonm "github.com/Wifx/gonetworkmanager/v2"
	"github.com/godbus/dbus/v5"
	"github.com/kvmnet/kvmnet/agent/config"
	"github.com/kvmnet/kvmnet/agent/managedfile"
	"github.com/kvmnet/kvmnet/agent/netstack"
	"github.com/kvmnet/kvmnet/agent/nm"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// fakeNM is a small in-memory NetworkManager: enough state for plans, and a call log.
type fakeNM struct {
	mu        sync.Mutex
	state     nm.State
	waitErr   error
	adjustErr error
	block     chan struct{} // WaitIPv4 waits for it when set
	calls     []string
}

func (f *fakeNM) log(s string) { f.mu.Lock(); f.calls = append(f.calls, s); f.mu.Unlock() }
func (f *fakeNM) called() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.calls, ",")
}
func (f *fakeNM) State(context.Context) (nm.State, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.state
	st.Devices, st.Profiles = slices.Clone(st.Devices), slices.Clone(st.Profiles)
	return st, nil
}
func (f *fakeNM) Settings(_ context.Context, p dbus.ObjectPath) (nm.Settings, error) {
	f.log("settings")
	return nm.Settings{"connection": {"id": dbus.MakeVariant(string(p)), "uuid": dbus.MakeVariant("u")}}, nil
}
func (f *fakeNM) AddProfile(_ context.Context, s nm.Settings) (dbus.ObjectPath, error) {
	id, _ := s["connection"]["id"].Value().(string)
	f.log("add:" + id)
	f.mu.Lock()
	f.state.Profiles = append(f.state.Profiles, nm.ParseProfile(dbus.ObjectPath("/c/"+id), s))
	f.mu.Unlock()
	return dbus.ObjectPath("/c/" + id), nil
}
func (f *fakeNM) UpdateProfile(context.Context, dbus.ObjectPath, nm.Settings) error {
	f.log("update")
	return nil
}
func (f *fakeNM) DeleteProfile(_ context.Context, p dbus.ObjectPath) error {
	f.log("delete:" + string(p))
	return nil
}
func (f *fakeNM) ProfileByUUID(context.Context, string) (dbus.ObjectPath, error) {
	return "", errors.New("does not exist")
}
func (f *fakeNM) Activate(_ context.Context, c, _ dbus.ObjectPath) (dbus.ObjectPath, error) {
	f.log("activate:" + string(c))
	return "/a/1", nil
}
func (f *fakeNM) WaitIPv4(ctx context.Context, _, _ dbus.ObjectPath, _ time.Duration) ([]string, error) {
	f.log("wait")
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if f.waitErr != nil {
		return nil, f.waitErr
	}
	return []string{"10.77.0.100/24"}, nil
}
func (f *fakeNM) CheckpointCreate(_ context.Context, _ []dbus.ObjectPath, d time.Duration, _ gonm.NmCheckpointCreateFlags) (dbus.ObjectPath, error) {
	f.log("checkpoint:" + d.String())
	return "/cp/1", nil
}
func (f *fakeNM) CheckpointDestroy(context.Context, dbus.ObjectPath) error {
	f.log("destroy")
	return nil
}
func (f *fakeNM) CheckpointAdjust(_ context.Context, _ dbus.ObjectPath, d time.Duration) error {
	f.log("adjust:" + d.String())
	return f.adjustErr
}
func (f *fakeNM) CheckpointRollback(context.Context, dbus.ObjectPath) (map[string]uint32, error) {
	f.log("rollback")
	return map[string]uint32{"/d/1": 0}, nil
}

type fixedNICs []NIC

func (n fixedNICs) NICs() ([]NIC, error) { return n, nil }

type env struct {
	root string
	nm   *fakeNM
	a    *Applier
}

func newEnv(t *testing.T, cfg config.Config) *env {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"etc/apt/apt.conf.d", "etc/sysctl.d", "proc/sys/net/ipv6/conf/all", "proc/sys/net/ipv6/conf/default"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"all", "default"} {
		if err := os.WriteFile(filepath.Join(root, "proc/sys/net/ipv6/conf", k, "disable_ipv6"), []byte("0\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	store, err := managedfile.New(managedfile.Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	in := baseInputs()
	f := &fakeNM{state: in.NM}
	cfg.Root = root
	a := New(Options{Config: cfg, NM: f, Files: store, Sysctl: ProcSysctl{Root: root}, NICs: fixedNICs(in.NICs)})
	t.Cleanup(func() { _ = a.Close() })
	return &env{root: root, nm: f, a: a}
}

// setNM swaps NetworkManager's client (and so the NetworkManager backend over it) of a built
// Applier, for fakes that wrap e.nm.
func (a *Applier) setNM(c NM) {
	a.o.NM = c
	a.nmb = netstack.NewNetworkManager(c, a.log)
}

func (e *env) read(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.root, rel))
	if errors.Is(err, os.ErrNotExist) {
		return "<absent>"
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestApplyFilesRollbackAndConfirm(t *testing.T) {
	e := newEnv(t, config.Default())
	ctx := context.Background()
	req := &kvmnetv1.ApplyRequest{RollbackTimeoutSeconds: 30, Actions: []*kvmnetv1.Action{setIPv6(true), forceIPv4(true)}}

	dry, err := e.a.Apply(ctx, &kvmnetv1.ApplyRequest{DryRun: true, Actions: req.Actions})
	if err != nil || !dry.DryRun || len(dry.Changes) != 4 || e.read(t, "etc/sysctl.d/99-kvmnet-disable-ipv6.conf") != "<absent>" {
		t.Fatalf("dry run: %v %v", dry, err)
	}

	resp, err := e.a.Apply(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.CheckpointId == "" || resp.Noop || len(resp.Changes) != 4 || e.a.Pending().GetId() != resp.CheckpointId {
		t.Fatalf("response %v", resp)
	}
	if got := e.read(t, "proc/sys/net/ipv6/conf/all/disable_ipv6"); got != "1\n" {
		t.Fatalf("live sysctl %q", got)
	}
	if got := e.read(t, "etc/apt/apt.conf.d/99kvmnet-force-ipv4"); !strings.HasPrefix(got, managedfile.Header) || !strings.Contains(got, `Acquire::ForceIPv4 "true";`) {
		t.Fatalf("apt file %q", got)
	}
	if strings.Contains(e.nm.called(), "checkpoint") {
		t.Fatal("a files-only plan created an NM checkpoint")
	}
	if _, err := e.a.Apply(ctx, req); !errors.Is(err, ErrPrecondition) || !strings.Contains(err.Error(), "pending") {
		t.Fatalf("second apply while pending: %v", err)
	}
	if _, err := e.a.Rollback(ctx, "kvmnet-nope"); !errors.Is(err, ErrNoCheckpoint) {
		t.Fatalf("rollback of unknown id: %v", err)
	}
	restored, err := e.a.Rollback(ctx, resp.CheckpointId)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("restored: %v", restored)
	if e.read(t, "etc/sysctl.d/99-kvmnet-disable-ipv6.conf") != "<absent>" || e.read(t, "etc/apt/apt.conf.d/99kvmnet-force-ipv4") != "<absent>" ||
		e.read(t, "proc/sys/net/ipv6/conf/all/disable_ipv6") != "0\n" || e.a.Pending() != nil {
		t.Fatal("rollback left changes behind")
	}

	resp, err = e.a.Apply(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.a.Confirm(ctx, resp.CheckpointId); err != nil {
		t.Fatal(err)
	}
	if err := e.a.Confirm(ctx, resp.CheckpointId); !errors.Is(err, ErrNoCheckpoint) {
		t.Fatalf("double confirm: %v", err)
	}
	again, err := e.a.Apply(ctx, req)
	if err != nil || !again.Noop || again.CheckpointId != "" || len(again.Changes) != 0 {
		t.Fatalf("second apply after confirm must be a no-op: %v %v", again, err)
	}
}

func TestUnconfirmedExpires(t *testing.T) {
	e := newEnv(t, config.Default())
	var events []string
	e.a.o.OnEvent = func(s string) { events = append(events, s) }
	resp, err := e.a.Apply(context.Background(), &kvmnetv1.ApplyRequest{Actions: []*kvmnetv1.Action{setIPv6(true)}})
	if err != nil {
		t.Fatal(err)
	}
	e.a.pending.timer.Stop()
	e.a.expire(resp.CheckpointId) // what the timer does at the deadline
	if e.read(t, "etc/sysctl.d/99-kvmnet-disable-ipv6.conf") != "<absent>" || e.read(t, "proc/sys/net/ipv6/conf/default/disable_ipv6") != "0\n" {
		t.Fatal("expiry did not roll back")
	}
	if e.a.Pending() != nil || len(events) != 2 || !strings.Contains(events[1], "not confirmed in time") {
		t.Fatalf("events %q", events)
	}
}

func TestNMPlanUsesCheckpointAndRollsBackOnFailure(t *testing.T) {
	e := newEnv(t, config.Default())
	ctx := context.Background()
	req := &kvmnetv1.ApplyRequest{RollbackTimeoutSeconds: 20, Actions: []*kvmnetv1.Action{ensure(mac1, 0, 5)}}
	resp, err := e.a.Apply(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if got := e.nm.called(); got != "checkpoint:30s,add:kvm-dhcp-enp1s0,activate:/c/kvm-dhcp-enp1s0,wait,adjust:25s" {
		t.Fatalf("calls %s", got)
	}
	if !strings.Contains(resp.Changes[1].Summary, "got 10.77.0.100/24") {
		t.Fatalf("activation change %q", resp.Changes[1].Summary)
	}
	if err := e.a.Confirm(ctx, resp.CheckpointId); err != nil || !strings.HasSuffix(e.nm.called(), ",destroy") {
		t.Fatalf("confirm: %v %s", err, e.nm.called())
	}

	e2 := newEnv(t, config.Default())
	e2.nm.waitErr = errors.New("no IPv4 address on enp1s0 within 5s")
	_, err = e2.a.Apply(ctx, req)
	if err == nil || !strings.Contains(err.Error(), "rolled back at once") || !strings.Contains(err.Error(), "no IPv4") {
		t.Fatalf("err = %v", err)
	}
	if !strings.HasSuffix(e2.nm.called(), ",wait,rollback") || e2.a.Pending() != nil {
		t.Fatalf("calls %s", e2.nm.called())
	}
}

func TestUnknownMACChangesNothing(t *testing.T) {
	e := newEnv(t, config.Default())
	_, err := e.a.Apply(context.Background(), &kvmnetv1.ApplyRequest{Actions: []*kvmnetv1.Action{setIPv6(true), ensure("52:54:00:99:99:99", 0, 0)}})
	if !errors.Is(err, ErrPrecondition) || !strings.Contains(err.Error(), "no interface with MAC 52:54:00:99:99:99") {
		t.Fatalf("err = %v", err)
	}
	if e.nm.called() != "" || e.read(t, "etc/sysctl.d/99-kvmnet-disable-ipv6.conf") != "<absent>" {
		t.Fatalf("something changed: calls=%q", e.nm.called())
	}
}

func TestOptOutNamesKey(t *testing.T) {
	cfg := config.Default()
	cfg.ManageIPv6 = false
	e := newEnv(t, cfg)
	_, err := e.a.Apply(context.Background(), &kvmnetv1.ApplyRequest{Actions: []*kvmnetv1.Action{setIPv6(true)}})
	if !errors.Is(err, ErrOptedOut) || !strings.Contains(err.Error(), "manage_ipv6") {
		t.Fatalf("err = %v", err)
	}
}

func TestProcSysctlRefusesPaths(t *testing.T) {
	s := ProcSysctl{Root: t.TempDir()}
	for _, k := range []string{"../etc/passwd", "net..x", "net/ipv6", ""} {
		if _, err := s.Get(k); !errors.Is(err, ErrInvalid) {
			t.Errorf("key %q: %v", k, err)
		}
	}
}

// TestPendingDoesNotWaitForApply: GetState asks Pending while an Apply waits for IPv4; it must
// answer at once.
func TestPendingDoesNotWaitForApply(t *testing.T) {
	e := newEnv(t, config.Default())
	e.nm.block = make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := e.a.Apply(context.Background(), &kvmnetv1.ApplyRequest{Actions: []*kvmnetv1.Action{ensure(mac1, 0, 5)}})
		done <- err
	}()
	for !strings.Contains(e.nm.called(), "wait") {
		time.Sleep(5 * time.Millisecond)
	}
	got := make(chan *kvmnetv1.Checkpoint, 1)
	go func() { got <- e.a.Pending() }()
	select {
	case cp := <-got:
		if cp != nil {
			t.Fatalf("pending during apply: %v", cp)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Pending blocked behind a running Apply")
	}
	close(e.nm.block)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if e.a.Pending() == nil {
		t.Fatal("no pending checkpoint after the apply")
	}
}

// TestNMCheckpointReArmedAfterSteps: NetworkManager's checkpoint outlives the steps (created with
// their waits on top of the rollback timeout) and is re-armed after them, so it cannot roll back
// inside the host's verification window; a failed re-arm rolls the Apply back.
func TestNMCheckpointReArmedAfterSteps(t *testing.T) {
	ctx := context.Background()
	req := &kvmnetv1.ApplyRequest{RollbackTimeoutSeconds: 10, Actions: []*kvmnetv1.Action{ensure(mac1, 0, 30)}}
	e := newEnv(t, config.Default())
	if _, err := e.a.Apply(ctx, req); err != nil {
		t.Fatal(err)
	}
	if got := e.nm.called(); !strings.HasPrefix(got, "checkpoint:45s,") || !strings.HasSuffix(got, ",wait,adjust:15s") {
		t.Fatalf("calls %s, want checkpoint:45s (30 s wait + 10 s + margin) ... adjust:15s after the wait", got)
	}
	e2 := newEnv(t, config.Default())
	e2.nm.adjustErr = errors.New("checkpoint does not exist")
	_, err := e2.a.Apply(ctx, req)
	if !errors.Is(err, ErrRolledBack) || !strings.Contains(err.Error(), "re-arm") || !strings.HasSuffix(e2.nm.called(), ",adjust:15s,rollback") || e2.a.Pending() != nil {
		t.Fatalf("failed re-arm: %v; calls %s", err, e2.nm.called())
	}
}
