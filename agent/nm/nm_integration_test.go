package nm

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/kvmnet/kvmnet/scripts/lab/testenv"
)

var nmBinaries = []string{"ip", "dbus-daemon", "NetworkManager", "dnsmasq", "unshare"}

const staleEth0 = `[connection]
id=Wired eth0
uuid=6f2f0d6e-1111-4111-8111-000000000001
type=ethernet
interface-name=eth0

[ipv4]
method=auto

[ipv6]
method=auto
`

func lab(t *testing.T, o testenv.NMLabOptions) (*testenv.NMLab, *Client) {
	t.Helper()
	l := testenv.NewNMLab(t, o)
	c := Dial(l.Bus.Address, Options{CallTimeout: time.Second})
	t.Cleanup(func() { _ = c.Close() })
	return l, c
}

func waitDevices(t *testing.T, c *Client, names ...string) State {
	t.Helper()
	var st State
	err := testenv.WaitFor(15*time.Second, 100*time.Millisecond, func() (bool, error) {
		var err error
		st, err = c.State(context.Background())
		if err != nil {
			return false, err
		}
		for _, n := range names {
			found := false
			for _, d := range st.Devices {
				if d.Interface == n && d.Managed && d.State >= 30 {
					found = true
				}
			}
			if !found {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("devices %v not managed by NetworkManager: %v (%+v)", names, err, st.Devices)
	}
	return st
}

// TestProfilesLeaseAndMarker: real NetworkManager on a private bus. The stale "Wired eth0" profile is
// reported as bound to a missing interface; a kvm-dhcp profile built from DHCPSpec is accepted by
// NetworkManager, activated on the veth (a "veth" device, not DeviceWired), gets a lease from dnsmasq,
// carries kvmnet's mark in the keyfile, and survives a GetSettings → Update round trip.
func TestProfilesLeaseAndMarker(t *testing.T) {
	testenv.Require(t, nmBinaries...)
	l, c := lab(t, testenv.NMLabOptions{
		NICs: []testenv.GuestNIC{{Name: "enp1s0", MAC: "52:54:00:10:00:01", OnBridge: true}, {Name: "ens3", MAC: "52:54:00:10:00:02"}},
		NM:   testenv.NMOptions{Keyfiles: map[string]string{"wired-eth0.nmconnection": staleEth0}},
	})
	ctx := context.Background()
	st := waitDevices(t, c, "enp1s0", "ens3")
	if !st.Status.Running || !strings.HasPrefix(st.Status.Version, "1.") {
		t.Fatalf("status %+v", st.Status)
	}
	dev, ok := st.DeviceByMAC("52:54:00:10:00:01")
	if !ok || dev.Interface != "enp1s0" || dev.TypeName() != "veth" || !dev.Ethernet() {
		t.Fatalf("device by MAC: %+v ok=%t", dev, ok)
	}
	stale, ok := st.ProfileByID("Wired eth0")
	if !ok || !stale.BoundToMissingInterface || stale.ManagedByKvmnet || stale.Active {
		t.Fatalf("stale profile: %+v ok=%t", stale, ok)
	}

	spec := DHCPSpec{InterfaceName: "enp1s0", MAC: dev.MAC, IPv6Method: "ignore"}
	path, err := c.AddProfile(ctx, spec.NewSettings(NewUUID()))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ac, err := c.Activate(ctx, path, dev.Path)
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := c.WaitIPv4(ctx, dev.Path, ac, 20*time.Second)
	if err != nil {
		t.Fatalf("%v\n%s", err, l.Report())
	}
	t.Logf("measured: activate -> IPv4 %v in %s", addrs, time.Since(start))
	lease := l.DHCP.LeaseFor(dev.MAC)
	if lease == "" || !strings.HasPrefix(addrs[0], lease+"/") {
		t.Fatalf("addresses %v, dnsmasq lease %q", addrs, lease)
	}

	st, err = c.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p, ok := st.ProfileByID("kvm-dhcp-enp1s0")
	if !ok || !p.ManagedByKvmnet || !p.Active || p.ActiveDevice != "enp1s0" || len(spec.Diff(p)) != 0 {
		t.Fatalf("kvm-dhcp profile: %+v diff=%v", p, spec.Diff(p))
	}
	sameAsOneByOne(t, c, st)
	kf, err := l.NM.Keyfile("kvm-dhcp-enp1s0.nmconnection")
	if err != nil || !strings.Contains(kf, "[user]") || !strings.Contains(kf, "org.kvmnet.managed-by=kvmnet-agent") {
		t.Fatalf("keyfile lacks kvmnet's mark (%v):\n%s", err, kf)
	}

	// Update round trip on the active profile: GetSettings carries the deprecated ipv6 "addresses";
	// UpdateSettings drops it so NetworkManager accepts the update.
	old, err := c.Settings(ctx, p.Path)
	if err != nil {
		t.Fatal(err)
	}
	spec.IPv6Method = "disabled"
	if err := c.UpdateProfile(ctx, p.Path, spec.UpdateSettings(old)); err != nil {
		t.Fatal(err)
	}
	s2, err := c.Settings(ctx, p.Path)
	if err != nil {
		t.Fatal(err)
	}
	if got := ParseProfile(p.Path, s2); got.IPv6Method != "disabled" || got.UUID != p.UUID {
		t.Fatalf("after update: %s", got)
	}
}

const staticEnp1s0 = `[connection]
id=office-static
uuid=6f2f0d6e-2222-4222-8222-000000000002
type=ethernet
interface-name=enp1s0

[ipv4]
method=manual
address1=10.77.0.50/24

[ipv6]
method=ignore
`

// TestCheckpointRollsBackByItself: a checkpoint not destroyed in time restores a deleted, active
// profile by itself; an explicit CheckpointRollback does the same at once; CheckpointDestroy keeps
// the change.
func TestCheckpointRollsBackByItself(t *testing.T) {
	testenv.Require(t, nmBinaries...)
	l, c := lab(t, testenv.NMLabOptions{
		NICs: []testenv.GuestNIC{{Name: "enp1s0", MAC: "52:54:00:10:01:01", OnBridge: true}},
		NM:   testenv.NMOptions{Keyfiles: map[string]string{"static.nmconnection": staticEnp1s0}},
	})
	ctx := context.Background()
	waitStatic := func(what string) {
		t.Helper()
		err := testenv.WaitFor(20*time.Second, 100*time.Millisecond, func() (bool, error) {
			st, err := c.State(ctx)
			if err != nil {
				return false, err
			}
			p, ok := st.ProfileByID("office-static")
			addrs := l.IPv4("enp1s0")
			return ok && p.Active && len(addrs) == 1 && addrs[0] == "10.77.0.50/24", nil
		})
		if err != nil {
			t.Fatalf("%s: office-static not active with 10.77.0.50/24: %v (addrs %v)", what, err, l.IPv4("enp1s0"))
		}
	}
	waitStatic("at start")
	deleteStatic := func() {
		t.Helper()
		st, err := c.State(ctx)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := st.ProfileByID("office-static")
		if err := c.DeleteProfile(ctx, p.Path); err != nil {
			t.Fatal(err)
		}
		if err := testenv.WaitFor(5*time.Second, 50*time.Millisecond, func() (bool, error) { return len(l.IPv4("enp1s0")) == 0, nil }); err != nil {
			t.Fatalf("address still there after delete: %v", l.IPv4("enp1s0"))
		}
	}

	t.Run("timeout", func(t *testing.T) {
		cp, err := c.CheckpointCreate(ctx, nil, 2*time.Second, CheckpointFlags)
		if err != nil {
			t.Fatal(err)
		}
		deleteStatic()
		start := time.Now()
		waitStatic("after the rollback timeout")
		t.Logf("measured: restored %s after delete (timeout 2s)", time.Since(start))
		if cps, _ := c.Checkpoints(ctx); len(cps) != 0 {
			t.Fatalf("checkpoint %s still listed after its rollback: %v", cp, cps)
		}
	})
	t.Run("explicit rollback", func(t *testing.T) {
		cp, err := c.CheckpointCreate(ctx, nil, 60*time.Second, CheckpointFlags)
		if err != nil {
			t.Fatal(err)
		}
		deleteStatic()
		res, err := c.CheckpointRollback(ctx, cp)
		if err != nil {
			t.Fatal(err)
		}
		for dev, r := range res {
			if r != 0 {
				t.Errorf("rollback of %s: result %d", dev, r)
			}
		}
		waitStatic("after CheckpointRollback")
	})
	t.Run("adjust re-arms the timer", func(t *testing.T) {
		cp, err := c.CheckpointCreate(ctx, nil, 2*time.Second, CheckpointFlags)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.CheckpointAdjust(ctx, cp, 6*time.Second); err != nil {
			t.Fatal(err)
		}
		armed := time.Now()
		deleteStatic()
		time.Sleep(3 * time.Second) // past the original 2 s timeout
		if cps, _ := c.Checkpoints(ctx); len(cps) != 1 {
			t.Fatalf("checkpoint rolled back at its original timeout although re-armed: %v", cps)
		}
		if st, _ := c.State(ctx); func() bool { _, ok := st.ProfileByID("office-static"); return ok }() {
			t.Fatal("profile back before the re-armed timeout")
		}
		waitStatic("after the re-armed timeout")
		t.Logf("measured: restored %s after the re-arm to 6s", time.Since(armed).Round(10*time.Millisecond))
	})
	t.Run("destroy keeps the change", func(t *testing.T) {
		cp, err := c.CheckpointCreate(ctx, nil, 2*time.Second, CheckpointFlags)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.CheckpointAdjust(ctx, cp, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		deleteStatic()
		if err := c.CheckpointDestroy(ctx, cp); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second) // past the original 2 s timeout: nothing may come back
		st, err := c.State(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := st.ProfileByID("office-static"); ok {
			t.Fatal("profile came back although the checkpoint was destroyed")
		}
	})
}

// TestNotRunningFailsFast: no NetworkManager on the bus, or no bus at all → a clear error within 2 s.
func TestNotRunningFailsFast(t *testing.T) {
	testenv.Require(t, nmBinaries...)
	l := testenv.NewNMLab(t, testenv.NMLabOptions{NoNM: true})
	for _, tc := range []struct{ name, addr, want string }{
		{"no NetworkManager on the bus", l.Bus.Address, "NetworkManager is not running"},
		{"no bus", "unix:path=" + t.TempDir() + "/none.sock", "connect to system bus"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Dial(tc.addr, Options{})
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			start := time.Now()
			_, err := c.State(ctx)
			took := time.Since(start)
			t.Logf("measured: error after %s: %v", took, err)
			if err == nil || !strings.Contains(err.Error(), tc.want) || ctx.Err() != nil {
				t.Fatalf("err = %v (ctx %v), want %q before the 2 s deadline", err, ctx.Err(), tc.want)
			}
			if tc.want == "NetworkManager is not running" && !errors.Is(err, ErrNotRunning) {
				t.Fatal("error does not wrap ErrNotRunning")
			}
		})
	}
}

// TestFrozenFailsInSeconds: NetworkManager stopped with SIGSTOP → every call fails after the call
// timeout instead of hanging, and works again once thawed.
func TestFrozenFailsInSeconds(t *testing.T) {
	testenv.Require(t, nmBinaries...)
	l, c := lab(t, testenv.NMLabOptions{NICs: []testenv.GuestNIC{{Name: "enp1s0", MAC: "52:54:00:10:02:01"}}})
	waitDevices(t, c, "enp1s0")
	if err := l.NM.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err := c.State(ctx)
	t.Logf("measured: frozen NetworkManager → error after %s: %v", time.Since(start), err)
	if err == nil || !strings.Contains(err.Error(), "no answer within 1s") || ctx.Err() != nil {
		t.Fatalf("err = %v, want the 1 s call deadline to fire", err)
	}
	if _, err := c.CheckpointCreate(ctx, nil, 10*time.Second, CheckpointFlags); err == nil {
		t.Fatal("checkpoint create on a frozen NetworkManager succeeded")
	}
	if err := l.NM.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if err := testenv.WaitFor(10*time.Second, 100*time.Millisecond, func() (bool, error) {
		_, err := c.State(context.Background())
		return err == nil, err
	}); err != nil {
		t.Fatalf("after SIGCONT: %v", err)
	}
}

// TestSubscribe: profile and device signals arrive as events while nothing polls.
func TestSubscribe(t *testing.T) {
	testenv.Require(t, nmBinaries...)
	_, c := lab(t, testenv.NMLabOptions{NICs: []testenv.GuestNIC{{Name: "enp1s0", MAC: "52:54:00:10:03:01", OnBridge: true}}})
	st := waitDevices(t, c, "enp1s0")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	evs, err := c.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dev, _ := st.DeviceByMAC("52:54:00:10:03:01")
	path, err := c.AddProfile(ctx, DHCPSpec{InterfaceName: "enp1s0", MAC: dev.MAC}.NewSettings(NewUUID()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Activate(ctx, path, dev.Path); err != nil {
		t.Fatal(err)
	}
	var sawProfile, sawActivated bool
	for !(sawProfile && sawActivated) {
		select {
		case ev, ok := <-evs:
			if !ok {
				t.Fatal("event channel closed")
			}
			t.Logf("event: %+v", ev)
			sawProfile = sawProfile || (ev.Kind == EventProfile && strings.Contains(ev.Summary, "kvm-dhcp-enp1s0"))
			sawActivated = sawActivated || (ev.Kind == EventState && ev.Interface == "enp1s0" && strings.Contains(ev.Summary, "-> NmDeviceStateActivated"))
		case <-ctx.Done():
			t.Fatalf("events missing: profile=%t activated=%t", sawProfile, sawActivated)
		}
	}
}

// sameAsOneByOne checks that State, which takes devices', active connections' and profiles'
// properties from one GetManagedObjects reply, reads what one call per object reads.
func sameAsOneByOne(t *testing.T, c *Client, st State) {
	t.Helper()
	ctx := context.Background()
	active := map[dbus.ObjectPath]string{}
	for _, d := range st.Devices {
		one, err := c.device(ctx, d.Path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprintf("%+v", one) != fmt.Sprintf("%+v", d) {
			t.Errorf("device from GetManagedObjects %+v, one by one %+v", d, one)
		}
		if d.ActiveConnection != "/" && d.ActiveConnection != "" {
			var v dbus.Variant
			if err := c.call(ctx, d.ActiveConnection, propsIface+".Get", []any{activeIface, "Connection"}, &v); err != nil {
				t.Fatal(err)
			}
			active[v.Value().(dbus.ObjectPath)] = d.Interface
		}
	}
	withIP4 := 0
	for _, d := range st.Devices {
		withIP4 += len(d.IPv4)
	}
	if len(active) == 0 || withIP4 == 0 {
		t.Fatalf("nothing to compare: %d active connections, %d IPv4 addresses", len(active), withIP4)
	}
	for _, p := range st.Profiles {
		var fn dbus.Variant
		if err := c.call(ctx, p.Path, propsIface+".Get", []any{connIface, "Filename"}, &fn); err != nil {
			t.Fatal(err)
		}
		if p.Filename != fn.Value().(string) || p.ActiveDevice != active[p.Path] || p.Active != (active[p.Path] != "") {
			t.Errorf("profile %s: filename %q active %t on %q; one by one: filename %q active on %q", p.ID, p.Filename, p.Active, p.ActiveDevice, fn.Value(), active[p.Path])
		}
	}
}
