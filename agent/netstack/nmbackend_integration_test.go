package netstack

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kvmnet/kvmnet/agent/nm"
	"github.com/kvmnet/kvmnet/scripts/lab/testenv"
)

// TestNetworkManagerBackendRealNM: the NetworkManager backend against a real NetworkManager on a
// private bus in a namespace this test creates, with dnsmasq on a bridge. A checkpoint NetworkManager
// rolled back by itself is "already rolled back" to Revert; Apply activates kvmnet's profile and the
// lease it reports is dnsmasq's; Revert deletes the profile the Apply added (and the address goes);
// Commit keeps it; no checkpoint is left behind.
func TestNetworkManagerBackendRealNM(t *testing.T) {
	testenv.Require(t, "ip", "dbus-daemon", "NetworkManager", "dnsmasq", "unshare")
	const mac = "52:54:00:16:00:01"
	l := testenv.NewNMLab(t, testenv.NMLabOptions{Prefix: "nmb", NICs: []testenv.GuestNIC{{Name: "enp1s0", MAC: mac, OnBridge: true}},
		DnsmasqExtra: []string{"--no-ping"}})
	c := nm.Dial(l.Bus.Address, nm.Options{CallTimeout: 3 * time.Second})
	t.Cleanup(func() { _ = c.Close() })
	b := NewNetworkManager(c, nil)
	ctx := context.Background()

	var dev nm.Device
	if err := testenv.WaitFor(20*time.Second, 100*time.Millisecond, func() (bool, error) {
		st, err := c.State(ctx)
		if err != nil {
			return false, nil
		}
		d, ok := st.DeviceByMAC(mac)
		dev = d
		return ok && d.Managed && d.State >= 30, nil
	}); err != nil {
		t.Fatalf("enp1s0 not managed by NetworkManager: %v (%+v)\nNM log:\n%s", err, dev, l.NM.Proc.Output())
	}
	if id, err := b.Instance(ctx); err != nil || !strings.HasPrefix(id, ":1.") {
		t.Fatalf("instance %q %v", id, err)
	}
	profile := func() (nm.Profile, bool) {
		st, err := c.State(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return st.ProfileByID("kvm-dhcp-enp1s0")
	}
	addProfile := func() {
		t.Helper()
		spec := nm.DHCPSpec{InterfaceName: "enp1s0", MAC: mac, IPv6Method: "ignore"}
		if _, err := c.AddProfile(ctx, spec.NewSettings(nm.NewUUID())); err != nil {
			t.Fatal(err)
		}
	}
	apply := func() []string {
		t.Helper()
		p, err := b.Plan(Target{NIC: NIC{Name: "enp1s0", MAC: mac}})
		if err != nil {
			t.Fatal(err)
		}
		p.Activate.Device, p.Activate.Wait = string(dev.Path), 30*time.Second
		start := time.Now()
		ev, err := b.Apply(ctx, nil, p)
		if err != nil {
			t.Fatalf("%v\nNM log:\n%s", err, l.NM.Proc.Output())
		}
		t.Logf("measured: activate -> %v in %s", ev, time.Since(start).Round(time.Millisecond))
		lease := l.DHCP.LeaseFor(mac)
		if lease == "" || len(ev) != 1 || !strings.HasPrefix(ev[0], EvidenceIPv4+lease+"/") {
			t.Fatalf("evidence %v, dnsmasq lease %q", ev, lease)
		}
		return ev
	}
	noCheckpoint := func() {
		t.Helper()
		if cps, err := c.Checkpoints(ctx); err != nil || len(cps) != 0 {
			t.Fatalf("checkpoints left: %v %v", cps, err)
		}
	}

	t.Run("NetworkManager's own timer", func(t *testing.T) {
		id, err := b.Begin(ctx, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		addProfile()
		start := time.Now()
		if err := testenv.WaitFor(10*time.Second, 100*time.Millisecond, func() (bool, error) { _, ok := profile(); return !ok, nil }); err != nil {
			t.Fatal("profile added after the checkpoint still there after its 2 s timeout")
		}
		t.Logf("measured: NetworkManager rolled back by itself %s after the change", time.Since(start).Round(10*time.Millisecond))
		res, err := b.Revert(ctx, id)
		if err != nil || len(res) != 1 || !strings.Contains(res[0], "already rolled back") {
			t.Fatalf("revert of a rolled-back checkpoint: %v %v", res, err)
		}
		noCheckpoint()
	})
	t.Run("apply then revert", func(t *testing.T) {
		id, err := b.Begin(ctx, 60*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		addProfile()
		apply()
		if err := b.Rearm(ctx, id, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		res, err := b.Revert(ctx, id)
		if err != nil || len(res) != 1 || !strings.HasPrefix(res[0], "NetworkManager checkpoint rolled back (devices ") {
			t.Fatalf("revert: %v %v", res, err)
		}
		if _, ok := profile(); ok {
			t.Fatal("profile added after the checkpoint survived Revert")
		}
		if err := testenv.WaitFor(10*time.Second, 100*time.Millisecond, func() (bool, error) { return len(l.IPv4("enp1s0")) == 0, nil }); err != nil {
			t.Fatalf("address still on enp1s0 after Revert: %v", l.IPv4("enp1s0"))
		}
		noCheckpoint()
	})
	t.Run("apply then commit", func(t *testing.T) {
		id, err := b.Begin(ctx, 60*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		addProfile()
		apply()
		if err := b.Rearm(ctx, id, 2*time.Second); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(ctx, id); err != nil {
			t.Fatal(err)
		}
		noCheckpoint()
		time.Sleep(3 * time.Second) // past the re-armed timeout: a checkpoint not destroyed would roll back now
		if p, ok := profile(); !ok || !p.Active || p.ActiveDevice != "enp1s0" || len(l.IPv4("enp1s0")) == 0 {
			t.Fatalf("committed profile %+v ok=%t, addresses %v", p, ok, l.IPv4("enp1s0"))
		}
	})
}
