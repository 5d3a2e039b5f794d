package netstack

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	gonm "github.com/Wifx/gonetworkmanager/v2"
	"github.com/godbus/dbus/v5"
	"github.com/kvmnet/kvmnet/agent/nm"
)

// fakeNMClient is NetworkManager behind NMClient: one device, the profiles in state, and a log
// of the calls that change something.
type fakeNMClient struct {
	state    nm.State
	calls    []string
	rollback map[string]uint32
	errs     map[string]error // by call name
	instance string
}

func (f *fakeNMClient) call(s string) error {
	f.calls = append(f.calls, s)
	return f.errs[strings.SplitN(s, ":", 2)[0]]
}
func (f *fakeNMClient) State(context.Context) (nm.State, error) { return f.state, f.errs["state"] }
func (f *fakeNMClient) Settings(context.Context, dbus.ObjectPath) (nm.Settings, error) {
	return nil, errors.New("not used")
}
func (f *fakeNMClient) AddProfile(context.Context, nm.Settings) (dbus.ObjectPath, error) {
	return "", errors.New("not used")
}
func (f *fakeNMClient) UpdateProfile(context.Context, dbus.ObjectPath, nm.Settings) error {
	return errors.New("not used")
}
func (f *fakeNMClient) DeleteProfile(context.Context, dbus.ObjectPath) error {
	return errors.New("not used")
}
func (f *fakeNMClient) ProfileByUUID(context.Context, string) (dbus.ObjectPath, error) {
	return "", errors.New("not used")
}
func (f *fakeNMClient) Activate(_ context.Context, conn, dev dbus.ObjectPath) (dbus.ObjectPath, error) {
	return "/ac/new", f.call("activate:" + string(conn) + "@" + string(dev))
}
func (f *fakeNMClient) WaitIPv4(_ context.Context, _, ac dbus.ObjectPath, d time.Duration) ([]string, error) {
	if err := f.call("wait:" + string(ac) + ":" + d.String()); err != nil {
		return nil, err
	}
	return []string{"10.77.0.105/24", "10.77.0.106/24"}, nil
}
func (f *fakeNMClient) CheckpointCreate(_ context.Context, devs []dbus.ObjectPath, d time.Duration, fl gonm.NmCheckpointCreateFlags) (dbus.ObjectPath, error) {
	if devs != nil || fl != nm.CheckpointFlags {
		return "", errors.New("checkpoint of some devices only, or without kvmnet's flags")
	}
	return "/cp/1", f.call("create:" + d.String())
}
func (f *fakeNMClient) CheckpointDestroy(_ context.Context, cp dbus.ObjectPath) error {
	return f.call("destroy:" + string(cp))
}
func (f *fakeNMClient) CheckpointRollback(_ context.Context, cp dbus.ObjectPath) (map[string]uint32, error) {
	return f.rollback, f.call("rollback:" + string(cp))
}
func (f *fakeNMClient) CheckpointAdjust(_ context.Context, cp dbus.ObjectPath, d time.Duration) error {
	return f.call("adjust:" + string(cp) + ":" + d.String())
}

// instanceNM also tells NetworkManager processes apart.
type instanceNM struct{ *fakeNMClient }

func (f instanceNM) Instance(context.Context) (string, error) {
	if f.instance == "" {
		return "", nm.ErrNotRunning
	}
	return f.instance, nil
}

func nmState(profileActive bool) nm.State {
	st := nm.State{
		Devices:  []nm.Device{{Path: "/dev/2", Interface: "enp1s0", MAC: "52:54:00:00:00:01", Managed: true, ActiveConnection: "/ac/auto"}},
		Profiles: []nm.Profile{{Path: "/c/7", ID: "kvm-dhcp-enp1s0", Type: nm.EthernetType, ManagedByKvmnet: true}},
	}
	if profileActive {
		st.Profiles[0].Active, st.Profiles[0].ActiveDevice = true, "enp1s0"
	}
	return st
}

var nmNIC = NIC{Name: "enp1s0", MAC: "52:54:00:00:00:01"}

func TestNetworkManagerIsManaging(t *testing.T) {
	b := NewNetworkManager(&fakeNMClient{}, nil)
	if b.Name() != NameNetworkManager || b.Stack().String() != "NETWORK_STACK_NETWORK_MANAGER" {
		t.Fatalf("name %s stack %s", b.Name(), b.Stack())
	}
	ok, why := b.IsManaging(Detection{NIC: nmNIC, Claims: []Claim{{Stack: NameNetworkManager}}})
	if !ok || why != "networkmanager_claims=enp1s0" {
		t.Fatalf("claimed: %t %q", ok, why)
	}
	ok, why = b.IsManaging(Detection{NIC: nmNIC, NMRunning: true, Claims: []Claim{{Stack: NameNetplan, Files: []string{"/etc/netplan/a.yaml"}}}})
	if ok || why != "networkmanager_claims=no networkmanager_running=true" {
		t.Fatalf("netplan's NIC: %t %q", ok, why)
	}
}

// TestChooserNetworkManagerBackend: with the NetworkManager backend in the list, a NIC
// NetworkManager claims (or that nothing else would configure) gets that backend; a file-based
// stack's NIC keeps its backend; NetworkManager and netplan both claiming a NIC is ErrConflict naming
// both with the file, and no backend.
func TestChooserNetworkManagerBackend(t *testing.T) {
	nmb := NewNetworkManager(&fakeNMClient{}, nil)
	np := NewNetplan(t.TempDir())
	c := NewChooser([]Backend{nmb, np}, nil)
	for _, tc := range []struct {
		name    string
		det     Detection
		want    Backend
		ev      string
		conflit bool
	}{
		{name: "claimed by NetworkManager", det: Detection{NIC: nmNIC, NMRunning: true, Claims: []Claim{{Stack: NameNetworkManager, Detail: "NetworkManager manages enp1s0"}}},
			want: nmb, ev: "networkmanager_claims=enp1s0 stack=networkmanager"},
		{name: "nothing claims it", det: Detection{NIC: nmNIC, NMRunning: true},
			want: nmb, ev: "networkmanager_claims=no networkmanager_running=true stack=networkmanager"},
		{name: "netplan renders it", det: Detection{NIC: nmNIC, NetplanInstalled: true, NetworkdRunning: true,
			Claims: []Claim{{Stack: NameNetplan, Files: []string{"/etc/netplan/50-cloud-init.yaml"}, Detail: "id enp1s0"}}},
			want: np, ev: "stack=netplan"},
		{name: "both claim it", det: Detection{NIC: nmNIC, NMRunning: true, NetplanInstalled: true, Claims: []Claim{
			{Stack: NameNetworkManager, Detail: "NetworkManager manages enp1s0"},
			{Stack: NameNetplan, Files: []string{"/etc/netplan/50-cloud-init.yaml"}, Detail: "id enp1s0"}}},
			conflit: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ch, err := c.Choose(tc.det)
			if tc.conflit {
				if !errors.Is(err, ErrConflict) || ch.Backend != nil ||
					!strings.Contains(err.Error(), "networkmanager (NetworkManager manages enp1s0) and netplan (/etc/netplan/50-cloud-init.yaml: id enp1s0)") {
					t.Fatalf("choice %+v, err %v", ch, err)
				}
				return
			}
			if err != nil || ch.Backend != tc.want || !strings.Contains(ch.Evidence, tc.ev) {
				t.Fatalf("choice %s %v evidence %q, err %v; want %s with %q", ch.Stack, ch.Backend, ch.Evidence, err, tc.want.Name(), tc.ev)
			}
		})
	}
	sel := NewSelector(nil, c)
	if sel.Backend(NameNetworkManager) != nmb || sel.Backend(NameNetplan) != np {
		t.Fatal("Selector.Backend does not name the backends by name")
	}
}

func TestNetworkManagerPlanApply(t *testing.T) {
	ctx := context.Background()
	if _, err := NewNetworkManager(nil, nil).Plan(Target{NIC: nmNIC}); err == nil {
		t.Fatal("plan without a client")
	}
	for _, tc := range []struct {
		name   string
		fresh  bool
		active bool
		calls  string
	}{
		{"activates the profile", false, false, "activate:/c/7@/dev/2 wait:/ac/new:7s"},
		{"re-activates an active profile it did not just create", false, true, "activate:/c/7@/dev/2 wait:/ac/new:7s"},
		{"waits for NetworkManager's own autoconnect of a fresh profile", true, true, "wait:/ac/auto:7s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeNMClient{state: nmState(tc.active)}
			b := NewNetworkManager(f, nil)
			p, err := b.Plan(Target{NIC: nmNIC})
			if err != nil || p.Activate == nil || p.Activate.Profile != "kvm-dhcp-enp1s0" || len(p.Files) != 0 || len(p.Apply) != 0 ||
				strings.Join(p.Evidence, " ") != "stack=networkmanager profile=kvm-dhcp-enp1s0" {
				t.Fatalf("plan %+v, err %v", p, err)
			}
			p.Activate.Device, p.Activate.Fresh, p.Activate.Wait = "/dev/2", tc.fresh, 7*time.Second
			ev, err := b.Apply(ctx, nil, p)
			if err != nil || strings.Join(ev, " ") != EvidenceIPv4+"10.77.0.105/24,10.77.0.106/24" {
				t.Fatalf("evidence %q, err %v", ev, err)
			}
			if got := strings.Join(f.calls, " "); got != tc.calls {
				t.Fatalf("calls %q, want %q", got, tc.calls)
			}
			if ev, err := b.Rollback(ctx, nil, p, true); ev != nil || err != nil {
				t.Fatalf("per-NIC rollback %v %v: the checkpoint restores", ev, err)
			}
		})
	}
	t.Run("profile vanished", func(t *testing.T) {
		f := &fakeNMClient{state: nm.State{}}
		b := NewNetworkManager(f, nil)
		p, _ := b.Plan(Target{NIC: nmNIC})
		if _, err := b.Apply(ctx, nil, p); err == nil || !strings.Contains(err.Error(), "kvm-dhcp-enp1s0 vanished") || len(f.calls) != 0 {
			t.Fatalf("err %v, calls %v", err, f.calls)
		}
	})
	t.Run("lease wait fails", func(t *testing.T) {
		f := &fakeNMClient{state: nmState(false), errs: map[string]error{"wait": errors.New("no IPv4 after 7s")}}
		b := NewNetworkManager(f, nil)
		p, _ := b.Plan(Target{NIC: nmNIC})
		p.Activate.Device = "/dev/2"
		if _, err := b.Apply(ctx, nil, p); err == nil || err.Error() != "no IPv4 after 7s" {
			t.Fatalf("err %v", err)
		}
	})
}

// TestNetworkManagerCheckpoint: NetworkManager's checkpoint semantics behind Checkpointer.
func TestNetworkManagerCheckpoint(t *testing.T) {
	ctx := context.Background()
	f := &fakeNMClient{rollback: map[string]uint32{"/org/freedesktop/NetworkManager/Devices/3": 0, "/org/freedesktop/NetworkManager/Devices/2": 1}}
	b := NewNetworkManager(f, nil)
	if id, err := b.Instance(ctx); id != "" || err != nil {
		t.Fatalf("a client that cannot tell processes apart: %q %v", id, err)
	}
	id, err := b.Begin(ctx, 95*time.Second)
	if err != nil || id != "/cp/1" {
		t.Fatal(id, err)
	}
	if err := b.Rearm(ctx, id, 35*time.Second); err != nil {
		t.Fatal(err)
	}
	res, err := b.Revert(ctx, id)
	if err != nil || strings.Join(res, ";") != "NetworkManager checkpoint rolled back (devices 2=1 3=0)" {
		t.Fatalf("revert %q %v", res, err)
	}
	if err := b.Commit(ctx, id); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.calls, " "); got != "create:1m35s adjust:/cp/1:35s rollback:/cp/1 destroy:/cp/1" {
		t.Fatalf("calls %q", got)
	}

	f.errs = map[string]error{"rollback": errors.New("roll back checkpoint /cp/1: checkpoint /cp/1 does not exist")}
	if res, err := b.Revert(ctx, id); err != nil || strings.Join(res, ";") != "NetworkManager had already rolled back checkpoint /cp/1" {
		t.Fatalf("revert after NetworkManager's own rollback: %q %v", res, err)
	}
	f.errs = map[string]error{"rollback": errors.New("timeout"), "destroy": errors.New("no bus")}
	if _, err := b.Revert(ctx, id); err == nil {
		t.Fatal("revert failure hidden")
	}
	if err := b.Commit(ctx, id); err == nil {
		t.Fatal("commit failure hidden")
	}

	w := NewNetworkManager(instanceNM{&fakeNMClient{instance: ":1.7"}}, nil)
	if id, err := w.Instance(ctx); id != ":1.7" || err != nil {
		t.Fatalf("instance %q %v", id, err)
	}
	w = NewNetworkManager(instanceNM{&fakeNMClient{}}, nil)
	if _, err := w.Instance(ctx); !errors.Is(err, nm.ErrNotRunning) {
		t.Fatalf("stopped NetworkManager: %v", err)
	}
	if _, err := NewNetworkManager(nil, nil).Begin(ctx, time.Second); err == nil {
		t.Fatal("checkpoint without a client")
	}
}
