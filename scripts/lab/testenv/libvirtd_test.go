package testenv

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestLibvirtdDefaultNetwork starts a private libvirtd, defines and starts the stock default network,
// and checks the bridge, address, dnsmasq and forwarding inside the namespace, then that stopping
// leaves no process behind.
func TestLibvirtdDefaultNetwork(t *testing.T) {
	Require(t, "ip", "unshare", "nsenter", "mount", "libvirtd", "virtlogd", "virsh", "dnsmasq")
	var lvPID, holder int
	var dnsmasqPID int
	t.Run("instance", func(t *testing.T) {
		ns := NewNetns(t, "lv")
		start := time.Now()
		lv := StartLibvirtd(t, ns, LibvirtdOptions{})
		t.Logf("libvirtd ready in %s (pid %d, %s)", time.Since(start).Round(time.Millisecond), lv.PID, lv.URI)
		lvPID, holder = lv.PID, lv.HolderPID()
		comm, _ := os.ReadFile("/proc/" + strconv.Itoa(lv.PID) + "/comm")
		if strings.TrimSpace(string(comm)) != "libvirtd" {
			t.Fatalf("PID %d is %q, want libvirtd", lv.PID, comm)
		}
		if out := lv.MustVirsh("net-list", "--all", "--name"); strings.TrimSpace(out) != "" {
			t.Fatalf("fresh instance has networks: %q", out)
		}
		f := lv.EtcDir + "/default-net.xml"
		if err := os.WriteFile(f, []byte(StockDefaultNetworkXML), 0o644); err != nil {
			t.Fatal(err)
		}
		lv.MustVirsh("net-define", f)
		lv.MustVirsh("net-start", "default")
		addr := ns.MustRun("ip", "-4", "-o", "addr", "show", "dev", "virbr0")
		if !strings.Contains(addr, "192.168.122.1/24") {
			t.Fatalf("virbr0 in netns lacks 192.168.122.1/24: %s", addr)
		}
		pidText := strings.TrimSpace(lv.MustNsenter("cat", "/run/libvirt/network/default.pid"))
		dnsmasqPID, _ = strconv.Atoi(pidText)
		comm, _ = os.ReadFile("/proc/" + pidText + "/comm")
		if strings.TrimSpace(string(comm)) != "dnsmasq" {
			t.Fatalf("pid file names %q (%q), want a running dnsmasq", pidText, comm)
		}
		if fw := strings.TrimSpace(lv.MustNsenter("cat", "/proc/sys/net/ipv4/ip_forward")); fw != "1" {
			t.Fatalf("ip_forward in netns = %q after net-start, want 1", fw)
		}
		// The host's own namespace must not have been touched.
		if _, err := os.Stat("/run/libvirt/network/default.pid"); err == nil {
			t.Fatal("pid file visible in the host mount namespace: mounts leaked")
		}
	})
	for _, pid := range []int{lvPID, holder, dnsmasqPID} {
		if pid == 0 {
			t.Fatal("instance did not record its PIDs")
		}
		if err := WaitFor(5*time.Second, 20*time.Millisecond, func() (bool, error) {
			return !ProcessAlive(pid), nil
		}); err != nil {
			t.Errorf("process %d still alive after the test ended", pid)
		}
	}
}

// TestLibvirtdParallel starts two instances at once, each with the autostarted default network:
// same bridge name and subnet, different namespaces, no clash.
func TestLibvirtdParallel(t *testing.T) {
	Require(t, "ip", "unshare", "nsenter", "mount", "libvirtd", "virtlogd", "virsh", "dnsmasq")
	for i := range 2 {
		t.Run("instance"+strconv.Itoa(i), func(t *testing.T) {
			t.Parallel()
			ns := NewNetns(t, "lv")
			lv := StartLibvirtd(t, ns, LibvirtdOptions{DefaultNetwork: DefaultNetworkAutostart})
			if err := WaitFor(30*time.Second, 100*time.Millisecond, func() (bool, error) {
				out, err := lv.Virsh("net-list", "--name")
				return strings.Contains(out, "default"), err
			}); err != nil {
				t.Fatalf("autostarted default network not active: %v", err)
			}
			if out := lv.MustVirsh("net-info", "default"); !strings.Contains(out, "virbr0") {
				t.Fatalf("net-info: %s", out)
			}
			ns.MustRun("ip", "link", "show", "virbr0")
		})
	}
}

// TestLibvirtdStockQEMU checks the Debian-stock mode: qemu.conf names libvirt-qemu:kvm, and a started
// domain's channel socket is owned that way (what issue 10 measured).
func TestLibvirtdStockQEMU(t *testing.T) {
	Require(t, "ip", "unshare", "nsenter", "mount", "libvirtd", "virtlogd", "virsh", "qemu-system-x86_64")
	ns := NewNetns(t, "lv")
	lv := StartLibvirtd(t, ns, LibvirtdOptions{QEMU: QEMUStock, DefaultNetwork: DefaultNetworkDefined})
	conf := lv.MustNsenter("cat", "/etc/libvirt/qemu.conf")
	if !strings.Contains(conf, `user = "libvirt-qemu"`) || !strings.Contains(conf, `group = "kvm"`) {
		t.Fatalf("qemu.conf in instance: %s", conf)
	}
	if out := lv.MustVirsh("net-list", "--all", "--name"); strings.TrimSpace(out) != "default" {
		t.Fatalf("want the default network defined (inactive): %q", out)
	}
	if out := lv.MustVirsh("net-list", "--name"); strings.TrimSpace(out) != "" {
		t.Fatalf("want no active network: %q", out)
	}
	// A diskless domain is enough for QEMU to create its channel socket, owned as Debian ships it.
	f := lv.EtcDir + "/stock-vm.xml"
	dom := `<domain type='qemu'><name>stock</name><memory unit='MiB'>64</memory><os><type arch='x86_64'>hvm</type></os>
<devices><channel type='unix'><source mode='bind'/><target type='virtio' name='org.kvmnet.agent.0'/></channel></devices></domain>`
	if err := os.WriteFile(f, []byte(dom), 0o644); err != nil {
		t.Fatal(err)
	}
	lv.MustVirsh("define", f)
	lv.MustVirsh("start", "stock")
	out := lv.MustNsenter("stat", "-c", "%A %U %G", "/var/lib/libvirt/qemu/channel/target/domain-1-stock/org.kvmnet.agent.0")
	if strings.TrimSpace(out) != "srwxrwxr-x libvirt-qemu kvm" {
		t.Fatalf("channel socket in stock mode: %q, want srwxrwxr-x libvirt-qemu kvm", out)
	}
}
