package service

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/kvmnet/kvmnet/agent/config"
	"github.com/kvmnet/kvmnet/agent/dns"
	"github.com/kvmnet/kvmnet/agent/link"
	"github.com/kvmnet/kvmnet/agent/nm"
	"github.com/kvmnet/kvmnet/agent/osinfo"
	"github.com/kvmnet/kvmnet/agent/qga"
	"github.com/kvmnet/kvmnet/agent/sysctl"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
	"github.com/kvmnet/kvmnet/scripts/lab/testenv"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// benchService is realService for benchmarks: netlink in the lab's guest namespace,
// NetworkManager on the lab's private bus; the read-only readers (os, dns, qga, ipv6 sysctls) read
// the real "/" of the machine as the agent does in a guest, the file store stays under a temporary
// root.
func benchService(b *testing.B, lab *testenv.NMLab) *Service {
	b.Helper()
	nsh, err := netns.GetFromName(lab.Guest.Name)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { nsh.Close() })
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(h.Close)
	root := b.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		b.Fatal(err)
	}
	links, err := link.New(link.Options{Handle: h, Namespace: &nsh, SysRoot: root})
	if err != nil {
		b.Fatal(err)
	}
	osr, _ := osinfo.New("/")
	dnsr, _ := dns.New("/")
	q, _ := qga.New("/")
	v6, _ := sysctl.NewReader("/")
	cfg := config.Default()
	cfg.Root = root
	s, err := New(Options{Version: "bench", Config: cfg, BusAddress: lab.Bus.Address, NMCallTimeout: 3 * time.Second,
		Links: links, OS: osr, DNS: dnsr, QGA: q, IPv6: v6})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}

// BenchmarkGetStateRealNM measures GetState against the real NetworkManager (private bus, own
// namespaces, prefix "gs") with two NICs on a DHCP bridge, one static and one stale profile. The
// "collectors" sub-benchmark times each sensor on its own, in GetState's order, and reports each as
// a <name>-ns/op metric; the nm-* metrics split NetworkManager's part into its D-Bus reads.
func BenchmarkGetStateRealNM(b *testing.B) {
	testenv.Require(b, binaries...)
	lab := testenv.NewNMLab(b, testenv.NMLabOptions{
		Prefix: "gs",
		NICs:   []testenv.GuestNIC{{Name: "enp1s0", MAC: macA, OnBridge: true}, {Name: "ens3", MAC: macB, OnBridge: true}},
		NM: testenv.NMOptions{Keyfiles: map[string]string{
			"wired-eth0.nmconnection": staleEth0, "office-static.nmconnection": staticEnp1s0}},
	})
	startQGAStandIn(b)
	s := benchService(b, lab)
	ctx := context.Background()
	// Wait until NetworkManager manages both NICs and the static profile is active.
	err := testenv.WaitFor(30*time.Second, 100*time.Millisecond, func() (bool, error) {
		st, err := s.GetState(ctx, &kvmnetv1.GetStateRequest{})
		if err != nil {
			return false, err
		}
		n := 0
		for _, in := range st.Interfaces {
			if in.Stack == kvmnetv1.NetworkStack_NETWORK_STACK_NETWORK_MANAGER {
				n++
			}
		}
		active := false
		for _, p := range st.NetworkManager.GetProfiles() {
			active = active || (p.Id == "office-static" && p.Active)
		}
		return n == 2 && active, nil
	})
	if err != nil {
		b.Fatalf("lab not ready: %v\n%s", err, lab.Report())
	}
	st, _ := s.GetState(ctx, &kvmnetv1.GetStateRequest{})
	if len(st.CollectionErrors) > 0 {
		b.Fatalf("collection errors: %v", st.CollectionErrors)
	}
	if !st.QemuGuestAgent.GetRunning() {
		b.Fatal("qemu-ga stand-in not seen running")
	}
	nst, err := s.o.NM.State(ctx)
	if err != nil {
		b.Fatal(err)
	}
	withIP4, active := 0, 0
	for _, d := range nst.Devices {
		if len(d.IPv4) > 0 {
			withIP4++
		}
		if d.ActiveConnection != "" && d.ActiveConnection != "/" {
			active++
		}
	}
	b.Logf("state: %d interfaces, %d routes; NetworkManager: %d devices (%d with IPv4, %d active), %d profiles",
		len(st.Interfaces), len(st.Routes), len(nst.Devices), withIP4, active, len(nst.Profiles))

	// CPU time per GetState of the three processes involved (this one, the bus daemon,
	// NetworkManager): what a guest with one vCPU pays for it whatever overlaps.
	b.Run("GetState", func(b *testing.B) {
		self0, bus0, nm0 := selfCPU(b), procCPU(b, lab.Bus.Proc.Cmd.Process.Pid), procCPU(b, lab.NM.PID())
		for _, pid := range []int{lab.Bus.Proc.Cmd.Process.Pid, lab.NM.PID()} {
			if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err != nil || !strings.Contains("dbus-daemon NetworkManager", strings.TrimSpace(string(comm))) {
				b.Fatalf("pid %d is %q (%v), not the bus daemon or NetworkManager", pid, comm, err)
			}
		}
		for b.Loop() {
			if _, err := s.GetState(ctx, &kvmnetv1.GetStateRequest{}); err != nil {
				b.Fatal(err)
			}
		}
		n := float64(b.N)
		b.ReportMetric(float64(selfCPU(b)-self0)/n, "agent-cpu-ns/op")
		b.ReportMetric(float64(procCPU(b, lab.Bus.Proc.Cmd.Process.Pid)-bus0)/n, "dbus-daemon-cpu-ns/op")
		b.ReportMetric(float64(procCPU(b, lab.NM.PID())-nm0)/n, "NetworkManager-cpu-ns/op")
	})

	b.Run("collectors", func(b *testing.B) {
		c := s.o.NM.(*nm.Client)
		names := []string{"hostname", "os", "links", "nm-state", "stack", "dns", "ipv6", "pkgconf", "qga", "files",
			"nm-status", "nm-devices", "nm-getmanagedobjects"}
		sum := make(map[string]time.Duration, len(names))
		timeIt := func(name string, f func()) {
			t0 := time.Now()
			f()
			sum[name] += time.Since(t0)
		}
		must := func(err error) {
			if err != nil {
				b.Fatal(err)
			}
		}
		for b.Loop() {
			var ifaces []*kvmnetv1.Interface
			var routes []*kvmnetv1.Route
			var devs []nm.Device
			timeIt("hostname", func() { _, err := s.o.OS.Hostname(); must(err) })
			timeIt("os", func() { _, err := s.o.OS.Info(); must(err) })
			timeIt("links", func() {
				var err error
				ifaces, routes, err = s.o.Links.Snapshot()
				must(err)
			})
			timeIt("nm-state", func() {
				st, err := s.o.NM.State(ctx)
				must(err)
				_, devs = nmProfiles(st, err, ifaces)
			})
			timeIt("stack", func() {
				s.probe.prime(devs, nil)
				must(s.o.Stack.Annotate(ctx, ifaces))
				s.probe.unprime()
			})
			timeIt("dns", func() { _, err := s.o.DNS.State(); must(err) })
			timeIt("ipv6", func() { _, err := s.o.IPv6.State(ifaces, routes); must(err) })
			timeIt("pkgconf", func() { _, err := s.o.PkgConf.State(); must(err) })
			timeIt("qga", func() { s.o.QGA.State() })
			timeIt("files", func() { _, err := s.o.Files.Managed(); must(err) })
			timeIt("nm-status", func() { _, err := c.Status(ctx); must(err) })
			timeIt("nm-devices", func() { _, err := c.Devices(ctx); must(err) })
			// The alternative to one call per object: ObjectManager's one reply with every object's
			// properties (not the profiles' settings).
			timeIt("nm-getmanagedobjects", func() {
				conn, err := c.Conn(ctx)
				must(err)
				var objs map[dbus.ObjectPath]map[string]map[string]dbus.Variant
				must(conn.Object("org.freedesktop.NetworkManager", "/org/freedesktop").CallWithContext(ctx,
					"org.freedesktop.DBus.ObjectManager.GetManagedObjects", 0).Store(&objs))
				if len(objs) == 0 {
					b.Fatal("GetManagedObjects: no objects")
				}
			})
		}
		for _, n := range names {
			b.ReportMetric(float64(sum[n].Nanoseconds())/float64(b.N), n+"-ns/op")
		}
	})
}

// startQGAStandIn runs a copy of sleep named qemu-ga, as a guest runs qemu-guest-agent, and stops it
// by PID at the end.
func startQGAStandIn(b *testing.B) {
	b.Helper()
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		b.Fatal(err)
	}
	bin, err := os.ReadFile(sleep)
	if err != nil {
		b.Fatal(err)
	}
	fake := filepath.Join(b.TempDir(), "qemu-ga")
	if err := os.WriteFile(fake, bin, 0o755); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(fake, "3600")
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
}

// selfCPU is this process's user+system CPU time.
func selfCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU is process pid's user+system CPU time (whole clock ticks of 10 ms).
func procCPU(b *testing.B, pid int) time.Duration {
	d, err := testenv.ProcessCPU(pid)
	if err != nil {
		b.Fatal(err)
	}
	return d
}
