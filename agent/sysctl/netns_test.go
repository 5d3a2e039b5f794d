package sysctl

import (
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netns"

	"github.com/kvmnet/kvmnet/agent/files"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
	"github.com/kvmnet/kvmnet/scripts/lab/testenv"
)

// inNetns runs f on an OS thread that has entered ns and is thrown away afterwards (the goroutine
// exits while locked), so no other code ever runs in ns by accident. /proc/sys/net follows the
// thread's namespace. f only runs after the thread provably sees ns's interfaces in /proc/sys.
func inNetns(t *testing.T, ns *testenv.Netns, wantIfaces []string, f func() error) error {
	t.Helper()
	target, err := netns.GetFromName(ns.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		if err := netns.Set(target); err != nil {
			errc <- err
			return
		}
		cur, err := netns.Get()
		if err != nil || !cur.Equal(target) {
			errc <- err
			return
		}
		cur.Close()
		entries, err := os.ReadDir("/proc/sys/net/ipv6/conf")
		if err != nil {
			errc <- err
			return
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		want := append([]string{"all", "default", "lo"}, wantIfaces...)
		slices.Sort(names)
		slices.Sort(want)
		if !slices.Equal(names, want) {
			t.Errorf("thread does not see the test namespace in /proc/sys: %v, want %v; nothing written", names, want)
			errc <- nil
			return
		}
		errc <- f()
	}()
	return <-errc
}

func TestDisableEnableInNetns(t *testing.T) {
	testenv.Require(t, "ip", "sysctl")
	guest := testenv.NewNetns(t, "ag")
	host := testenv.NewNetns(t, "ag")
	guest.Veth("enp1s0", host, "h0")
	guest.MustRun("ip", "-6", "addr", "add", "fd00:78::2/64", "dev", "enp1s0", "nodad")

	store, err := files.New(files.Options{Root: t.TempDir()}) // the persistent file goes to a temp root
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := NewProcWriter("/")
	r, _ := NewReader("/")
	m, _ := NewManager(store, pw, r)
	ifaces := []*kvmnetv1.Interface{{Name: "enp1s0", Ipv6: []string{"fd00:78::2/64"}}}

	var before, after *kvmnetv1.IPv6State
	var changes []*kvmnetv1.Change
	err = inNetns(t, guest, []string{"enp1s0"}, func() error {
		var err error
		if before, err = r.State(ifaces, nil); err != nil {
			return err
		}
		if changes, err = m.Apply(true, []string{"enp1s0"}); err != nil {
			return err
		}
		after, err = r.State(nil, nil)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if before.AllDisabled || before.InterfaceDisabled["enp1s0"] || !before.HasGlobalAddress {
		t.Fatalf("before: %v", before)
	}
	// The kernel propagates all=1 to every interface, so enp1s0 needs no write of its own.
	if kinds(changes) != "file:"+PersistentFile+" sysctl:net.ipv6.conf.default.disable_ipv6 sysctl:net.ipv6.conf.all.disable_ipv6" ||
		!after.AllDisabled || !after.DefaultDisabled {
		t.Fatalf("changes %v, after %v", changes, after)
	}
	for _, key := range []string{"net.ipv6.conf.all.disable_ipv6", "net.ipv6.conf.enp1s0.disable_ipv6"} {
		if v := strings.TrimSpace(guest.MustRun("sysctl", "-n", key)); v != "1" {
			t.Fatalf("%s = %s inside the namespace", key, v)
		}
	}
	if out := guest.MustRun("ip", "-6", "addr", "show", "dev", "enp1s0"); strings.Contains(out, "inet6") {
		t.Fatalf("IPv6 address still present after disable: %s", out)
	}

	err = inNetns(t, guest, []string{"enp1s0"}, func() error {
		_, err := m.Apply(false, []string{"enp1s0"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if v := strings.TrimSpace(guest.MustRun("sysctl", "-n", "net.ipv6.conf.enp1s0.disable_ipv6")); v != "0" {
		t.Fatalf("enp1s0 still disabled: %s", v)
	}
}
