package service

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gonm "github.com/Wifx/gonetworkmanager/v2"
	"github.com/godbus/dbus/v5"
	"github.com/kvmnet/kvmnet/agent/apply"
	"github.com/kvmnet/kvmnet/agent/checks"
	"github.com/kvmnet/kvmnet/agent/config"
	"github.com/kvmnet/kvmnet/agent/managedfile"
	"github.com/kvmnet/kvmnet/agent/nm"
	"github.com/kvmnet/kvmnet/agent/pkgconf"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// The guest every fuzz input starts from: two NICs, a stale eth0 profile, kvmnet's active profile
// on enp1s0, a static profile bound to enp2s0 by MAC, apt and dnf installed, dnf.conf already
// changed by kvmnet (so RestoreBackups and undo have something to restore), IPv6 enabled.
const (
	mac1 = "52:54:00:00:00:01"
	mac2 = "52:54:00:00:00:02"
)

// Option bits of FuzzHandlers' second argument.
const (
	optNoProfiles = 1 << iota // manage_profiles: false
	optNoIPv6                 // manage_ipv6: false
	optNoPkg                  // manage_package_manager: false
	optNMDown                 // NetworkManager not running
	optConfirm                // Confirm the checkpoint (default: Rollback it)
)

// memNM is an in-memory NetworkManager with checkpoints: enough behaviour for every plan to
// execute, and a record of the changes made.
type memNM struct {
	mu       sync.Mutex
	down     bool
	devices  []nm.Device
	profiles map[dbus.ObjectPath]nm.Settings
	active   map[dbus.ObjectPath]string // profile → interface
	cps      map[dbus.ObjectPath]nmSnapshot
	next     int
	added    []nm.Settings
	updated  []nm.Settings
	deleted  []nm.Settings
}

type nmSnapshot struct {
	profiles map[dbus.ObjectPath]nm.Settings
	active   map[dbus.ObjectPath]string
}

func newMemNM(down bool) *memNM {
	f := &memNM{down: down, profiles: map[dbus.ObjectPath]nm.Settings{}, active: map[dbus.ObjectPath]string{}, cps: map[dbus.ObjectPath]nmSnapshot{}}
	f.devices = []nm.Device{
		{Path: "/d/1", Interface: "enp1s0", MAC: mac1, Type: gonm.NmDeviceTypeEthernet, State: gonm.NmDeviceStateActivated, Managed: true, ActiveConnection: "/ac/0"},
		{Path: "/d/2", Interface: "enp2s0", MAC: mac2, Type: gonm.NmDeviceTypeEthernet, State: gonm.NmDeviceStateDisconnected, Managed: true, ActiveConnection: "/"},
	}
	hw2, _ := net.ParseMAC(mac2)
	f.profiles["/p/1"] = nm.Settings{
		"connection": {"id": dbus.MakeVariant("Wired connection 1"), "uuid": dbus.MakeVariant("u-1"), "type": dbus.MakeVariant(nm.EthernetType),
			"interface-name": dbus.MakeVariant("eth0")},
		"ipv4": {"method": dbus.MakeVariant("auto")},
	}
	f.profiles["/p/2"] = nm.DHCPSpec{InterfaceName: "enp1s0", MAC: mac1, IPv6Method: "ignore"}.NewSettings("u-2")
	f.profiles["/p/3"] = nm.Settings{
		"connection":    {"id": dbus.MakeVariant("static"), "uuid": dbus.MakeVariant("u-3"), "type": dbus.MakeVariant(nm.EthernetType)},
		nm.EthernetType: {"mac-address": dbus.MakeVariant([]byte(hw2))},
		"ipv4": {"method": dbus.MakeVariant("manual"), "gateway": dbus.MakeVariant("192.0.2.1"),
			"address-data": dbus.MakeVariant([]map[string]dbus.Variant{{"address": dbus.MakeVariant("192.0.2.10"), "prefix": dbus.MakeVariant(uint32(24))}})},
	}
	f.active["/p/2"] = "enp1s0"
	return f
}

func copySettings(s nm.Settings) nm.Settings {
	out := nm.Settings{}
	for k, props := range s {
		out[k] = map[string]dbus.Variant{}
		for p, v := range props {
			out[k][p] = v
		}
	}
	return out
}

// profileSet is the profiles as comparable strings (for "nothing changed" and "rolled back").
func (f *memNM) profileSet() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for p, s := range f.profiles {
		out = append(out, nm.ParseProfile(p, s).String()+" active="+f.active[p])
	}
	sort.Strings(out)
	return out
}

func (f *memNM) State(context.Context) (nm.State, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return nm.State{}, nm.ErrNotRunning
	}
	st := nm.State{Status: nm.Status{Running: true, Version: "1.42.4"}, Devices: slices.Clone(f.devices)}
	for p, s := range f.profiles {
		pr := nm.ParseProfile(p, s)
		pr.ActiveDevice, pr.Active = f.active[p], f.active[p] != ""
		st.Profiles = append(st.Profiles, pr)
	}
	sort.Slice(st.Profiles, func(i, j int) bool { return st.Profiles[i].ID < st.Profiles[j].ID })
	return st, nil
}

func (f *memNM) Devices(context.Context) ([]nm.Device, error) {
	if f.down {
		return nil, nm.ErrNotRunning
	}
	return slices.Clone(f.devices), nil
}

func (f *memNM) Subscribe(context.Context) (<-chan nm.Event, error) {
	if f.down {
		return nil, nm.ErrNotRunning
	}
	return make(chan nm.Event), nil
}

func (f *memNM) Close() error { return nil }

func (f *memNM) Settings(_ context.Context, p dbus.ObjectPath) (nm.Settings, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.profiles[p]
	if !ok {
		return nil, fmt.Errorf("profile %s does not exist", p)
	}
	return copySettings(s), nil
}

func (f *memNM) AddProfile(_ context.Context, s nm.Settings) (dbus.ObjectPath, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next++
	p := dbus.ObjectPath(fmt.Sprintf("/p/new%d", f.next))
	f.profiles[p] = copySettings(s)
	f.added = append(f.added, copySettings(s))
	return p, nil
}

func (f *memNM) UpdateProfile(_ context.Context, p dbus.ObjectPath, s nm.Settings) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.profiles[p]; !ok {
		return fmt.Errorf("profile %s does not exist", p)
	}
	f.profiles[p] = copySettings(s)
	f.updated = append(f.updated, copySettings(s))
	return nil
}

func (f *memNM) DeleteProfile(_ context.Context, p dbus.ObjectPath) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.profiles[p]
	if !ok {
		return fmt.Errorf("profile %s does not exist", p)
	}
	f.deleted = append(f.deleted, s)
	delete(f.profiles, p)
	delete(f.active, p)
	return nil
}

func (f *memNM) ProfileByUUID(_ context.Context, uuid string) (dbus.ObjectPath, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for p, s := range f.profiles {
		if u, _ := s["connection"]["uuid"].Value().(string); u == uuid {
			return p, nil
		}
	}
	return "", fmt.Errorf("profile with uuid %s does not exist", uuid)
}

func (f *memNM) Activate(_ context.Context, c, d dbus.ObjectPath) (dbus.ObjectPath, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.profiles[c]; !ok {
		return "", fmt.Errorf("profile %s does not exist", c)
	}
	for _, dev := range f.devices {
		if dev.Path == d {
			for p, in := range f.active {
				if in == dev.Interface {
					delete(f.active, p)
				}
			}
			f.active[c] = dev.Interface
			return "/ac/1", nil
		}
	}
	return "", fmt.Errorf("device %s does not exist", d)
}

func (f *memNM) WaitIPv4(context.Context, dbus.ObjectPath, dbus.ObjectPath, time.Duration) ([]string, error) {
	return []string{"192.168.122.50/24"}, nil
}

func (f *memNM) CheckpointCreate(context.Context, []dbus.ObjectPath, time.Duration, gonm.NmCheckpointCreateFlags) (dbus.ObjectPath, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next++
	cp := dbus.ObjectPath(fmt.Sprintf("/cp/%d", f.next))
	s := nmSnapshot{profiles: map[dbus.ObjectPath]nm.Settings{}, active: map[dbus.ObjectPath]string{}}
	for p, st := range f.profiles {
		s.profiles[p] = copySettings(st)
	}
	for p, in := range f.active {
		s.active[p] = in
	}
	f.cps[cp] = s
	return cp, nil
}

func (f *memNM) CheckpointDestroy(_ context.Context, cp dbus.ObjectPath) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.cps[cp]; !ok {
		return fmt.Errorf("checkpoint %s does not exist", cp)
	}
	delete(f.cps, cp)
	return nil
}

func (f *memNM) CheckpointAdjust(context.Context, dbus.ObjectPath, time.Duration) error { return nil }
func (f *memNM) CheckpointRollback(_ context.Context, cp dbus.ObjectPath) (map[string]uint32, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.cps[cp]
	if !ok {
		return nil, fmt.Errorf("checkpoint %s does not exist", cp)
	}
	delete(f.cps, cp)
	f.profiles, f.active = s.profiles, s.active
	return map[string]uint32{"/d/1": 0, "/d/2": 0}, nil
}

var _ NetworkManager = (*memNM)(nil)

// noPinger fails every ping without sending anything.
type noPinger struct{}

func (noPinger) Ping(context.Context, netip.Addr) (time.Duration, string, error) {
	return 0, "none", errors.New("fuzz: no network")
}

// offlineResolver answers from /etc/hosts only: every DNS exchange fails before a socket exists.
func offlineResolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("fuzz: no network")
	}}
}

// tree reads every entry under root: relative path → mode and content (symlink targets for links).
func tree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		v := info.Mode().String()
		switch {
		case info.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			v += " " + string(b)
		case info.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			v += " -> " + l
		}
		out[rel] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// changedPaths lists the paths added, removed or changed between two trees, outside kvmnet's
// state directory (backups and state.json live there).
func changedPaths(before, after map[string]string) []string {
	var out []string
	sd := strings.TrimPrefix(managedfile.DefaultStateDir, "/")
	for p, v := range after {
		if before[p] != v && p != sd && !strings.HasPrefix(p, sd+"/") && !strings.HasPrefix(sd, p+"/") {
			out = append(out, p)
		}
	}
	for p := range before {
		if _, ok := after[p]; !ok && !strings.HasPrefix(p, sd+"/") {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// children reports processes this one started: live ones and the resource use of reaped ones. Any
// process that ran (and was waited for) leaves page faults in RUSAGE_CHILDREN.
func children(t *testing.T) string {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		t.Fatal(err)
	}
	live, _ := filepath.Glob("/proc/self/task/*/children")
	var pids []string
	for _, f := range live {
		b, _ := os.ReadFile(f)
		pids = append(pids, strings.Fields(string(b))...)
	}
	return fmt.Sprintf("reaped: minflt=%d majflt=%d utime=%v stime=%v; live: %v", ru.Minflt, ru.Majflt, ru.Utime, ru.Stime, pids)
}

// fuzzRoot is a fresh, empty root directory removed when t ends: on tmpfs when /dev/shm exists
// (the file store fsyncs every write; on a disk that costs ~35 ms per input, on tmpfs nothing),
// else t.TempDir().
func fuzzRoot(t *testing.T) string {
	t.Helper()
	if st, err := os.Stat("/dev/shm"); err != nil || !st.IsDir() {
		return t.TempDir()
	}
	root, err := os.MkdirTemp("/dev/shm", "kvmnet-fuzz-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(root); err != nil {
			t.Error(err)
		}
	})
	return root
}

type fuzzEnv struct {
	root   string
	cfg    config.Config
	nm     *memNM
	sysctl *memSysctl
	links  *fakeLinks
	s      *Service
}

func newFuzzEnv(t *testing.T, opts uint8) *fuzzEnv {
	t.Helper()
	root := fuzzRoot(t)
	for _, d := range []string{"etc/sysctl.d", "etc/apt/apt.conf.d", "etc/dnf"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "etc/dnf/dnf.conf"), []byte("[main]\ngpgcheck=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/apt/apt.conf.d/70debconf"), []byte("DPkg::Pre-Install-Pkgs {};\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	store, err := managedfile.New(managedfile.Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Write(pkgconf.DnfConf, pkgconf.RenderDnf([]byte("[main]\ngpgcheck=1\n"), true), 0); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Root = root
	cfg.ManageProfiles = opts&optNoProfiles == 0
	cfg.ManageIPv6 = opts&optNoIPv6 == 0
	cfg.ManagePackageManager = opts&optNoPkg == 0
	e := &fuzzEnv{root: root, cfg: cfg, nm: newMemNM(opts&optNMDown != 0),
		sysctl: &memSysctl{m: map[string]string{apply.SysctlKeys[0]: "0", apply.SysctlKeys[1]: "0"}},
		links: &fakeLinks{ifaces: []*kvmnetv1.Interface{{Name: "lo"}, {Name: "enp1s0", Mac: mac1}, {Name: "enp2s0", Mac: "52:54:00:00:00:02"}},
			events: make(chan *kvmnetv1.Event, 4)}}
	e.s, err = New(Options{Version: "fuzz", Config: cfg, NM: e.nm, Links: e.links, Stack: fakeStack{}, IPv6: fakeIPv6{},
		PkgConf: fakePkg{}, DNS: fakeDNS{}, QGA: fakeQGA{}, OS: fakeOS{}, Files: store, Sysctl: e.sysctl,
		Checks: checks.New(checks.Options{Routes: e.links, Resolver: offlineResolver(), Pinger: noPinger{}})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.s.Close() })
	return e
}

// world is everything a handler may change: files under the root, live sysctls, profiles.
func (e *fuzzEnv) world(t *testing.T) (map[string]string, string, []string) {
	t.Helper()
	e.sysctl.mu.Lock()
	sys := fmt.Sprint(e.sysctl.m)
	e.sysctl.mu.Unlock()
	return tree(t, e.root), sys, e.nm.profileSet()
}

// wantUnchanged fails when anything outside the state directory differs from the snapshot.
func (e *fuzzEnv) wantUnchanged(t *testing.T, what string, files0 map[string]string, sys0 string, prof0 []string) {
	t.Helper()
	files1, sys1, prof1 := e.world(t)
	if ch := changedPaths(files0, files1); len(ch) > 0 {
		t.Fatalf("%s: files changed: %q", what, ch)
	}
	if sys1 != sys0 {
		t.Fatalf("%s: sysctls %s, were %s", what, sys1, sys0)
	}
	if !slices.Equal(prof1, prof0) {
		t.Fatalf("%s: profiles\n%s\nwere\n%s", what, strings.Join(prof1, "\n"), strings.Join(prof0, "\n"))
	}
}

// wantStatus fails unless err is a gRPC status with one of the codes and a message.
func wantStatus(t *testing.T, what string, err error, allowed ...codes.Code) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok || !slices.Contains(allowed, st.Code()) || strings.TrimSpace(st.Message()) == "" {
		t.Fatalf("%s: error %v (%T), want a status with one of %v and a message", what, err, err, allowed)
	}
}

// FuzzHandlers decodes arbitrary bytes as each request of the Agent service (GetStateRequest,
// RunChecksRequest, ApplyRequest, ConfirmRequest, RollbackRequest, WatchRequest; bytes that are not
// a valid message of a type are skipped for it, as gRPC would refuse them before the handler) and
// calls the real handlers of a Service whose backends are in memory: NetworkManager with
// checkpoints, sysctls, sensors, and the real file store and check runner rooted in a temporary
// directory with networking cut off (no resolver, no pinger; checks run with a cancelled context,
// so no socket is dialled). opts picks the configuration's opt-outs, a NetworkManager that is not
// running, and whether a checkpoint is confirmed or rolled back.
//
// Invariants: no panic; an error is a gRPC status with a documented code and a message; RunChecks
// fails exactly when checks.Validate does, and otherwise answers every check in order; Apply's
// InvalidArgument and PermissionDenied agree with apply.Validate; a failed, dry or no-op Apply
// changes nothing; a real Apply changes only kvmnet's three files, the two IPv6 sysctls (to "0" or
// "1") and kvm-dhcp-* profiles of NICs the guest has, leaves a pending checkpoint in GetState and
// announces it on Watch; Confirm and Rollback of any other id are NotFound and leave it pending;
// Rollback restores every file, sysctl and profile; no child process is ever started.
func FuzzHandlers(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte, opts uint8) {
		procs0 := children(t)
		e := newFuzzEnv(t, opts)
		files0, sys0, prof0 := e.world(t)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()

		// Watch first, so checkpoint events of this input reach it.
		wctx, wcancel := context.WithCancel(ctx)
		defer wcancel()
		stream := &fakeStream{ctx: wctx, ch: make(chan *kvmnetv1.Event, 64)}
		var wreq kvmnetv1.WatchRequest
		watching := proto.Unmarshal(b, &wreq) == nil
		done := make(chan error, 1)
		if watching {
			go func() { done <- e.s.Watch(&wreq, stream) }()
			e.links.events <- &kvmnetv1.Event{Kind: kvmnetv1.EventKind_EVENT_KIND_LINK, Interface: "enp1s0", Summary: "enp1s0 up"}
			if ev := nextEvent(t, stream, kvmnetv1.EventKind_EVENT_KIND_LINK, ""); ev.GetTime() == nil {
				t.Fatalf("watch event without time: %v", ev)
			}
		}

		var gsreq kvmnetv1.GetStateRequest
		if proto.Unmarshal(b, &gsreq) == nil {
			st, err := e.s.GetState(ctx, &gsreq)
			if err != nil || st.GetAgentVersion() != "fuzz" || st.GetPendingCheckpoint() != nil || len(st.GetInterfaces()) != 3 {
				t.Fatalf("GetState = %v, %v", st, err)
			}
		}

		var rcreq kvmnetv1.RunChecksRequest
		if proto.Unmarshal(b, &rcreq) == nil {
			cctx, ccancel := context.WithCancel(ctx)
			ccancel() // nothing may leave the machine: every dial stops at the cancelled context
			resp, err := e.s.RunChecks(cctx, &rcreq)
			verr := checks.Validate(&rcreq)
			switch {
			case verr != nil:
				wantStatus(t, "RunChecks", err, codes.InvalidArgument)
			case err != nil:
				t.Fatalf("RunChecks of a valid request: %v", err)
			case len(resp.GetResults()) != len(rcreq.GetChecks()):
				t.Fatalf("RunChecks: %d results for %d checks", len(resp.GetResults()), len(rcreq.GetChecks()))
			default:
				for i, r := range resp.GetResults() {
					if !proto.Equal(r.GetCheck(), rcreq.GetChecks()[i]) || (!r.GetOk() && r.GetError() == "") {
						t.Fatalf("RunChecks result %d: %v for %v", i, r, rcreq.GetChecks()[i])
					}
				}
			}
		}

		var areq kvmnetv1.ApplyRequest
		if proto.Unmarshal(b, &areq) == nil {
			fuzzApply(t, ctx, e, b, opts, &areq, stream, files0, sys0, prof0)
		}
		// Confirm and Rollback with nothing pending.
		var creq kvmnetv1.ConfirmRequest
		if proto.Unmarshal(b, &creq) == nil {
			_, err := e.s.Confirm(ctx, &creq)
			wantStatus(t, "Confirm with nothing pending", err, codes.NotFound)
		}
		var rreq kvmnetv1.RollbackRequest
		if proto.Unmarshal(b, &rreq) == nil {
			_, err := e.s.Rollback(ctx, &rreq)
			wantStatus(t, "Rollback with nothing pending", err, codes.NotFound)
		}

		if watching {
			wcancel()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("Watch returned %v after the client left", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Watch did not return after the client left")
			}
		}
		if procs := children(t); procs != procs0 {
			t.Fatalf("a child process ran: before %s, after %s", procs0, procs)
		}
	})
}

func fuzzApply(t *testing.T, ctx context.Context, e *fuzzEnv, b []byte, opts uint8, req *kvmnetv1.ApplyRequest,
	stream *fakeStream, files0 map[string]string, sys0 string, prof0 []string) {
	t.Helper()
	resp, err := e.s.Apply(ctx, req)
	_, verr := apply.Validate(req, e.cfg)
	t.Logf("Apply: %d changes, checkpoint %q, dry_run=%t noop=%t; error %v", len(resp.GetChanges()), resp.GetCheckpointId(), resp.GetDryRun(), resp.GetNoop(), err)
	if err != nil {
		wantStatus(t, "Apply", err, codes.InvalidArgument, codes.PermissionDenied, codes.FailedPrecondition, codes.Aborted, codes.Unavailable)
		switch code := status.Code(err); {
		case errors.Is(verr, apply.ErrInvalid) && code != codes.InvalidArgument,
			errors.Is(verr, apply.ErrOptedOut) && code != codes.PermissionDenied,
			verr == nil && (code == codes.InvalidArgument || code == codes.PermissionDenied):
			t.Fatalf("Apply: %v, but apply.Validate says %v", err, verr)
		}
		e.wantUnchanged(t, "failed Apply", files0, sys0, prof0)
		return
	}
	if verr != nil {
		t.Fatalf("Apply accepted a request apply.Validate refuses (%v)", verr)
	}
	if resp.GetDryRun() != req.GetDryRun() {
		t.Fatalf("Apply: dry_run %t for a request with dry_run %t", resp.GetDryRun(), req.GetDryRun())
	}
	pending := e.s.applier.Pending()
	if resp.GetDryRun() || resp.GetNoop() {
		if resp.GetCheckpointId() != "" || pending != nil {
			t.Fatalf("dry/no-op Apply left checkpoint %q (pending %v)", resp.GetCheckpointId(), pending)
		}
		e.wantUnchanged(t, "dry or no-op Apply", files0, sys0, prof0)
		return
	}
	id := resp.GetCheckpointId()
	if id == "" || len(resp.GetChanges()) == 0 || pending.GetId() != id {
		t.Fatalf("Apply: checkpoint %q, %d changes, pending %v", id, len(resp.GetChanges()), pending)
	}
	nextEvent(t, stream, kvmnetv1.EventKind_EVENT_KIND_CHECKPOINT, id+" created")
	// Only kvmnet's files, IPv6 sysctls and profiles of the guest's NICs changed.
	files1, _, _ := e.world(t)
	for _, p := range changedPaths(files0, files1) {
		if g := "/" + p; g != apply.SysctlFile && g != apply.AptFile && g != apply.DnfFile {
			t.Fatalf("Apply changed %s, not one of kvmnet's files", g)
		}
	}
	e.sysctl.mu.Lock()
	for k, v := range e.sysctl.m {
		if !slices.Contains(apply.SysctlKeys, k) || (v != "0" && v != "1") {
			t.Errorf("Apply set sysctl %s = %q", k, v)
		}
	}
	e.sysctl.mu.Unlock()
	e.nm.mu.Lock()
	for _, s := range append(slices.Clone(e.nm.added), e.nm.updated...) {
		p := nm.ParseProfile("", s)
		data, _ := s["user"]["data"].Value().(map[string]string)
		want := map[string]string{"enp1s0": mac1, "enp2s0": mac2}[p.InterfaceName]
		if want == "" || p.ID != nm.ProfilePrefix+p.InterfaceName || !p.ManagedByKvmnet || data[nm.MACKey] != want {
			t.Errorf("Apply created or changed profile %s for a NIC the guest lacks", p)
		}
	}
	e.nm.mu.Unlock()
	if t.Failed() {
		t.FailNow()
	}

	// Other ids are NotFound and leave the checkpoint pending.
	var creq kvmnetv1.ConfirmRequest
	if proto.Unmarshal(b, &creq) == nil && creq.GetCheckpointId() != id {
		_, err := e.s.Confirm(ctx, &creq)
		wantStatus(t, "Confirm of another id", err, codes.NotFound)
	}
	var rreq kvmnetv1.RollbackRequest
	if proto.Unmarshal(b, &rreq) == nil && rreq.GetCheckpointId() != id {
		_, err := e.s.Rollback(ctx, &rreq)
		wantStatus(t, "Rollback of another id", err, codes.NotFound)
	}
	if e.s.applier.Pending().GetId() != id {
		t.Fatalf("checkpoint %s no longer pending after requests for other ids", id)
	}
	// A second Apply while one is pending is refused and changes nothing more.
	if _, err := e.s.Apply(ctx, req); status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), id) {
		t.Fatalf("second Apply while %s is pending: %v", id, err)
	}

	if opts&optConfirm != 0 {
		if _, err := e.s.Confirm(ctx, &kvmnetv1.ConfirmRequest{CheckpointId: id}); err != nil {
			t.Fatalf("Confirm %s: %v", id, err)
		}
		nextEvent(t, stream, kvmnetv1.EventKind_EVENT_KIND_CHECKPOINT, id+" confirmed")
		if files2, _, _ := e.world(t); len(changedPaths(files1, files2)) > 0 {
			t.Fatalf("Confirm changed files: %q", changedPaths(files1, files2))
		}
	} else {
		restored, err := e.s.Rollback(ctx, &kvmnetv1.RollbackRequest{CheckpointId: id})
		if err != nil || len(restored.GetRestored()) == 0 {
			t.Fatalf("Rollback %s: %v, %v", id, restored, err)
		}
		nextEvent(t, stream, kvmnetv1.EventKind_EVENT_KIND_CHECKPOINT, id+" rolled back")
		e.wantUnchanged(t, "Apply then Rollback", files0, sys0, prof0)
	}
	if p := e.s.applier.Pending(); p != nil {
		t.Fatalf("checkpoint %v still pending", p)
	}
}

// nextEvent waits for the next event of kind whose summary contains has; nil when the Watch is
// not running (the input was not a WatchRequest).
func nextEvent(t *testing.T, s *fakeStream, kind kvmnetv1.EventKind, has string) *kvmnetv1.Event {
	t.Helper()
	if s.ctx.Err() != nil {
		return nil
	}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev := <-s.ch:
			if ev.GetKind() == kind && strings.Contains(ev.GetSummary(), has) {
				return ev
			}
		case <-deadline:
			t.Fatalf("no %s event with %q within 10s", kind, has)
		}
	}
}

var writeSeeds = flag.Bool("write-seeds", false, "rewrite testdata/fuzz/FuzzHandlers/seed-* from fuzzSeeds")

// fuzzSeeds are FuzzHandlers' committed seed corpus: valid plans of every action, requests of the
// other RPCs, and edge cases (limits, unknown enum values, empty actions, bad MACs).
func fuzzSeeds() map[string]struct {
	msg  proto.Message
	opts uint8
} {
	act := func(a ...*kvmnetv1.Action) *kvmnetv1.ApplyRequest { return &kvmnetv1.ApplyRequest{Actions: a} }
	ensure := func(mac string, v6 kvmnetv1.IPv6Method) *kvmnetv1.Action {
		return &kvmnetv1.Action{Action: &kvmnetv1.Action_EnsureDhcpProfile{EnsureDhcpProfile: &kvmnetv1.EnsureDHCPProfile{Mac: mac, Ipv6Method: v6, WaitIpv4Seconds: 5}}}
	}
	remove := func(mac string) *kvmnetv1.Action {
		return &kvmnetv1.Action{Action: &kvmnetv1.Action_RemoveConflictingProfiles{RemoveConflictingProfiles: &kvmnetv1.RemoveConflictingProfiles{Mac: mac}}}
	}
	ipv6 := func(disable bool) *kvmnetv1.Action {
		return &kvmnetv1.Action{Action: &kvmnetv1.Action_SetIpv6{SetIpv6: &kvmnetv1.SetIPv6{Disable: disable}}}
	}
	pkg := func(force bool) *kvmnetv1.Action {
		return &kvmnetv1.Action{Action: &kvmnetv1.Action_SetPackageManagerIpv4{SetPackageManagerIpv4: &kvmnetv1.SetPackageManagerIPv4{Force: force}}}
	}
	restore := &kvmnetv1.Action{Action: &kvmnetv1.Action_RestoreBackups{RestoreBackups: &kvmnetv1.RestoreBackups{}}}
	many := make([]*kvmnetv1.Action, apply.MaxActions+1)
	for i := range many {
		many[i] = ipv6(i%2 == 0)
	}
	type seed = struct {
		msg  proto.Message
		opts uint8
	}
	return map[string]seed{
		"apply-ensure-new":          {act(ensure(mac2, kvmnetv1.IPv6Method_IPV6_METHOD_AUTO), remove(mac2)), 0},
		"apply-ensure-existing":     {act(ensure("52:54:00:00:00:01", kvmnetv1.IPv6Method_IPV6_METHOD_DISABLED)), optConfirm},
		"apply-ensure-dash-mac":     {act(ensure("52-54-00-00-00-02", kvmnetv1.IPv6Method_IPV6_METHOD_IGNORE)), optConfirm},
		"apply-remove-conflicts":    {act(remove(mac1)), 0},
		"apply-ipv6-disable":        {act(ipv6(true)), 0},
		"apply-ipv6-enable":         {act(ipv6(false)), optConfirm},
		"apply-pkg-force":           {act(pkg(true)), 0},
		"apply-pkg-undo":            {act(pkg(false)), optConfirm},
		"apply-restore-backups":     {act(restore), 0},
		"apply-everything":          {&kvmnetv1.ApplyRequest{RollbackTimeoutSeconds: 3600, Actions: []*kvmnetv1.Action{ensure(mac1, 0), remove(mac1), ipv6(true), pkg(true), restore}}, 0},
		"apply-dry-run":             {&kvmnetv1.ApplyRequest{DryRun: true, Actions: []*kvmnetv1.Action{ensure(mac2, 0), ipv6(true)}}, 0},
		"apply-opted-out":           {act(ensure(mac2, 0), ipv6(true), pkg(true)), optNoProfiles | optNoIPv6 | optNoPkg},
		"apply-nm-down":             {act(ensure(mac2, 0)), optNMDown},
		"apply-unknown-mac":         {act(ensure("52:54:00:00:00:09", 0)), 0},
		"apply-bad-mac":             {act(remove("52:54:00:00:00:01:02:03")), 0},
		"apply-unknown-ipv6-method": {act(ensure(mac1, 42)), 0},
		"apply-wait-too-long":       {act(&kvmnetv1.Action{Action: &kvmnetv1.Action_EnsureDhcpProfile{EnsureDhcpProfile: &kvmnetv1.EnsureDHCPProfile{Mac: mac1, WaitIpv4Seconds: 301}}}), 0},
		"apply-rollback-too-short":  {&kvmnetv1.ApplyRequest{RollbackTimeoutSeconds: 9, Actions: []*kvmnetv1.Action{ipv6(true)}}, 0},
		"apply-rollback-too-long":   {&kvmnetv1.ApplyRequest{RollbackTimeoutSeconds: 3601, Actions: []*kvmnetv1.Action{ipv6(true)}}, 0},
		"apply-empty-action":        {act(&kvmnetv1.Action{}), 0},
		"apply-too-many-actions":    {act(many...), 0},
		"apply-no-actions":          {&kvmnetv1.ApplyRequest{}, 0},
		"checks-valid":              {&kvmnetv1.RunChecksRequest{Checks: []*kvmnetv1.Check{{Name: "gw", Kind: kvmnetv1.CheckKind_CHECK_KIND_PING}, {Name: "dns", Kind: kvmnetv1.CheckKind_CHECK_KIND_DNS, Target: "localhost"}, {Name: "dns-at", Kind: kvmnetv1.CheckKind_CHECK_KIND_DNS, Target: "deb.debian.org@192.0.2.53"}, {Name: "tcp", Kind: kvmnetv1.CheckKind_CHECK_KIND_TCP, Target: "192.0.2.1:443", Family: kvmnetv1.Family_FAMILY_V4}, {Name: "http", Kind: kvmnetv1.CheckKind_CHECK_KIND_HTTP, Target: "http://[2001:db8::1]/", Family: kvmnetv1.Family_FAMILY_V6, TimeoutMs: 30000}}}, 0},
		"checks-invalid":            {&kvmnetv1.RunChecksRequest{Checks: []*kvmnetv1.Check{{Name: "bad\x00", Kind: 99, Target: "file:///etc/shadow", TimeoutMs: 30001, Family: 7}}}, 0},
		"confirm-forged-id":         {&kvmnetv1.ConfirmRequest{CheckpointId: "kvmnet-000000000000"}, 0},
		"rollback-path-id":          {&kvmnetv1.RollbackRequest{CheckpointId: "../../etc/passwd"}, 0},
		"empty":                     {&kvmnetv1.GetStateRequest{}, 0},
		"apply-ipv6-opted-out":      {act(&kvmnetv1.Action{Action: &kvmnetv1.Action_SetIpv6{SetIpv6: &kvmnetv1.SetIPv6{Disable: true}}}), optNoIPv6},
	}
}

// seedFile renders one seed in the go test fuzz v1 corpus format.
func seedFile(b []byte, opts uint8) []byte {
	return fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\nbyte(%q)\n", b, rune(opts))
}

// TestFuzzSeedsCommitted keeps testdata/fuzz/FuzzHandlers/seed-* equal to fuzzSeeds (go test
// -run TestFuzzSeedsCommitted -write-seeds rewrites them).
func TestFuzzSeedsCommitted(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzHandlers")
	for name, s := range fuzzSeeds() {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(s.msg)
		if err != nil {
			t.Fatal(err)
		}
		want := seedFile(b, s.opts)
		path := filepath.Join(dir, "seed-"+name)
		if *writeSeeds {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %v; rerun with -write-seeds and commit it", path, err)
		}
	}
}
