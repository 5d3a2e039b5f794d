package apply

import (
	"os"
	"runtime"
	"testing"

	"github.com/vishvananda/netns"

	"github.com/kvmnet/kvmnet/scripts/lab/testenv"
)

// inNetns runs f on an OS thread that has entered ns and dies afterwards (the goroutine exits while
// locked), so nothing else ever runs in ns. /proc/sys/net follows the thread's namespace; f runs
// only once the thread provably sees ns's interface there.
func inNetns(t *testing.T, ns *testenv.Netns, iface string, f func() error) error {
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
		if _, err := os.Stat("/proc/sys/net/ipv6/conf/" + iface); err != nil {
			errc <- err
			return
		}
		errc <- f()
	}()
	return <-errc
}

// TestProcSysctlInNetns: against the kernel's /proc/sys in a namespace the test creates, the two
// live writes SetIPv6 makes (all, default) disable IPv6 on an existing interface too (the kernel
// propagates "all"), and the old value read before comes back on rollback. This is why apply writes
// no per-interface keys.
func TestProcSysctlInNetns(t *testing.T) {
	testenv.Require(t, "ip")
	guest := testenv.NewNetns(t, "ap")
	host := testenv.NewNetns(t, "ap")
	guest.Veth("enp1s0", host, "h0")
	s := ProcSysctl{Root: "/"}
	err := inNetns(t, guest, "enp1s0", func() error {
		old, err := s.Get(SysctlKeys[0])
		if err != nil {
			return err
		}
		for _, k := range SysctlKeys {
			if err := s.Set(k, "1"); err != nil {
				return err
			}
		}
		if v, err := s.Get("net.ipv6.conf.enp1s0.disable_ipv6"); err != nil || v != "1" {
			t.Errorf("enp1s0 disable_ipv6 = %q (%v) after all=1, want 1", v, err)
		}
		for _, k := range SysctlKeys {
			if err := s.Set(k, old); err != nil {
				return err
			}
		}
		if v, err := s.Get("net.ipv6.conf.enp1s0.disable_ipv6"); err != nil || v != old {
			t.Errorf("enp1s0 disable_ipv6 = %q (%v) after the rollback, want %q", v, err, old)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
