package hostnet

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/kvmnet/kvmnet/controller/libvirt/libvirtxml"
	"github.com/kvmnet/kvmnet/controller/snapshot"
	"github.com/kvmnet/kvmnet/scripts/lab/testenv"
)

// readerForNetns opens a Reader on a named test namespace the way a caller would: a netlink handle
// and a sysctl reader in that namespace.
func readerForNetns(t *testing.T, name, etcRoot string) *Reader {
	t.Helper()
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	nh, err := netlink.NewHandleAt(h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nh.Close)
	r, err := New(Config{Handle: nh, Netns: h, Sysctl: NetnsSysctl{NS: h}, EtcRoot: etcRoot})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestNetnsHost builds a small host in a namespace — a bridge with STP and a veth port to a guest
// namespace, a second bridge that is down, an uplink with IPv4 and IPv6 default routes, neighbour
// entries — and checks every fact the Reader reports, then turns ip_forward on with the fix.
func TestNetnsHost(t *testing.T) {
	testenv.Require(t, "ip", "ping")
	host := testenv.NewNetns(t, "lv")
	guest := testenv.NewNetns(t, "lv")
	inet := testenv.NewNetns(t, "lv")
	// STP is switched on only after the ping: with it on, a new port spends 2 x forward_delay learning.
	host.MustRun("ip", "link", "add", "br-lab", "type", "bridge", "stp_state", "0")
	host.MustRun("ip", "addr", "add", "10.77.0.1/24", "dev", "br-lab")
	host.MustRun("ip", "link", "set", "br-lab", "up")
	host.MustRun("ip", "link", "add", "br-down", "type", "bridge", "stp_state", "0")
	host.Veth("vnet0", guest, "eth0")
	host.MustRun("ip", "link", "set", "vnet0", "master", "br-lab")
	guest.MustRun("ip", "addr", "add", "10.77.0.10/24", "dev", "eth0")
	host.Veth("up0", inet, "wan0")
	host.MustRun("ip", "addr", "add", "203.0.113.2/24", "dev", "up0")
	host.MustRun("ip", "-6", "addr", "add", "2001:db8:1::2/64", "dev", "up0", "nodad")
	inet.MustRun("ip", "addr", "add", "203.0.113.1/24", "dev", "wan0")
	host.MustRun("ip", "route", "add", "default", "via", "203.0.113.1")
	host.MustRun("ip", "neigh", "add", "10.77.0.99", "lladdr", "52:54:00:00:00:99", "dev", "br-lab", "nud", "permanent")
	if err := testenv.WaitFor(10*time.Second, 100*time.Millisecond, func() (bool, error) {
		_, err := guest.Run("ping", "-c1", "-W1", "10.77.0.1")
		return err == nil, err
	}); err != nil {
		t.Fatalf("guest cannot reach the bridge: %v", err)
	}
	host.MustRun("ip", "link", "set", "br-lab", "type", "bridge", "stp_state", "1")
	guestMAC := strings.Fields(guest.MustRun("cat", "/sys/class/net/eth0/address"))[0]

	etc := t.TempDir()
	r := readerForNetns(t, host.Name, etc)
	h, err := r.Host(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !h.Read || h.Uplink != "up0" || h.IPv6DefaultRoute || !h.IPForwardKnown || h.IPForward {
		t.Fatalf("host facts: read=%v uplink=%q v6=%v fwd=%v/%v", h.Read, h.Uplink, h.IPv6DefaultRoute, h.IPForward, h.IPForwardKnown)
	}
	if len(h.Bridges) != 2 {
		t.Fatalf("bridges: %+v", h.Bridges)
	}
	down, lab := h.Bridges[0], h.Bridges[1]
	if down.Name != "br-down" || down.AdminUp || down.STP || down.OperState != "down" || len(down.Ports) != 0 {
		t.Fatalf("br-down: %+v", down)
	}
	if lab.Name != "br-lab" || !lab.AdminUp || !lab.STP || !reflect.DeepEqual(lab.Ports, []string{"vnet0"}) ||
		!slices.Contains(lab.Addresses, "10.77.0.1/24") {
		t.Fatalf("br-lab: %+v", lab)
	}
	if lab.OperState != "up" && lab.OperState != "unknown" {
		t.Fatalf("br-lab oper state %q", lab.OperState)
	}
	want := map[string]snapshot.Neighbor{
		"10.77.0.99": {IP: "10.77.0.99", MAC: "52:54:00:00:00:99", State: "permanent"},
		"10.77.0.10": {IP: "10.77.0.10", MAC: snapshot.ParseMAC(guestMAC)},
	}
	for _, n := range lab.Neighbors {
		w, ok := want[n.IP]
		if !ok {
			continue
		}
		if n.MAC != w.MAC || (w.State != "" && n.State != w.State) || n.State == "failed" {
			t.Errorf("neighbour %+v, want %+v", n, w)
		}
		delete(want, n.IP)
	}
	if len(want) != 0 {
		t.Fatalf("neighbours missing: %v (have %+v)", want, lab.Neighbors)
	}

	t.Run("ipv6 default route", func(t *testing.T) {
		host.MustRun("ip", "-6", "route", "add", "default", "via", "2001:db8:1::1", "dev", "up0")
		if v6, err := r.IPv6DefaultRoute(); err != nil || !v6 {
			t.Fatalf("IPv6DefaultRoute = %v, %v", v6, err)
		}
	})

	t.Run("host prefixes", func(t *testing.T) {
		p, err := r.HostPrefixes()
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range []string{"10.77.0.1/24", "10.77.0.0/24", "203.0.113.0/24", "2001:db8:1::2/64"} {
			if !slices.Contains(p, w) {
				t.Errorf("HostPrefixes %v lacks %s", p, w)
			}
		}
		if free, ev := libvirtxml.SubnetFree("10.77.0.0/16", p, nil); free {
			t.Errorf("10.77.0.0/16 reported free: %s", ev)
		}
		if free, ev := libvirtxml.SubnetFree(libvirtxml.DefaultSubnet, p, nil); !free {
			t.Errorf("default subnet reported taken: %s", ev)
		}
	})

	t.Run("ip_forward fix in the namespace only", func(t *testing.T) {
		before, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
		if err != nil {
			t.Fatal(err)
		}
		fix := r.IPForwardFix()
		if err := r.ApplyIPForwardFix(fix); err != nil {
			t.Fatal(err)
		}
		if v := strings.TrimSpace(host.MustRun("cat", "/proc/sys/net/ipv4/ip_forward")); v != "1" {
			t.Fatalf("ip_forward in the namespace = %q after the fix", v)
		}
		after, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
		if string(after) != string(before) {
			t.Fatalf("the test process's own ip_forward changed: %q -> %q", before, after)
		}
		b, err := os.ReadFile(filepath.Join(etc, IPForwardFile))
		if err != nil || !strings.Contains(string(b), "net.ipv4.ip_forward = 1") || !strings.Contains(string(b), "managed by kvmnet") {
			t.Fatalf("persisted file: %q %v", b, err)
		}
		host.MustRun("sysctl", "-qw", "net.ipv4.ip_forward=0")
		if on, err := r.IPForward(); err != nil || on {
			t.Fatalf("toggled off in the namespace, read %v, %v", on, err)
		}
	})

	t.Run("ForPID sees the same namespace", func(t *testing.T) {
		p := host.Start("anchor", nil, "sleep", "600")
		pid := p.Cmd.Process.Pid
		if err := testenv.WaitFor(5*time.Second, 10*time.Millisecond, func() (bool, error) {
			a, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/net")
			b, _ := os.Readlink("/proc/self/ns/net")
			return a != b && a != "", nil
		}); err != nil {
			t.Fatal(err)
		}
		pr, err := ForPID(pid, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = pr.Close() }()
		up, err := pr.Uplink()
		if err != nil || up != "up0" {
			t.Fatalf("Uplink via ForPID = %q, %v", up, err)
		}
	})
}

// TestLibvirtDnsmasq reads a real libvirt network's bridge and dnsmasq through ForPID(libvirtd), then
// kills that dnsmasq and sees it reported down, then restarts the network.
func TestLibvirtDnsmasq(t *testing.T) {
	testenv.Require(t, "ip", "unshare", "nsenter", "mount", "libvirtd", "virtlogd", "virsh", "dnsmasq")
	ns := testenv.NewNetns(t, "lv")
	lvd := testenv.StartLibvirtd(t, ns, testenv.LibvirtdOptions{DefaultNetwork: testenv.DefaultNetworkDefined})
	lvd.MustVirsh("net-start", "default")
	n, err := libvirtxml.ParseNetworkXML(lvd.MustVirsh("net-dumpxml", "default"))
	if err != nil {
		t.Fatal(err)
	}
	n.Active = true
	r, err := ForPID(lvd.PID, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = r.Close() }()
	ctx := context.Background()

	h, err := r.Host(ctx, []snapshot.Network{n})
	if err != nil {
		t.Fatal(err)
	}
	if !h.IPForward || len(h.Bridges) != 1 {
		t.Fatalf("host: fwd=%v bridges=%+v", h.IPForward, h.Bridges)
	}
	if b := h.Bridges[0]; b.Name != "virbr0" || !b.STP || !b.AdminUp || !slices.Contains(b.Addresses, "192.168.122.1/24") {
		t.Fatalf("virbr0: %+v", b)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(lvd.MustNsenter("cat", "/run/libvirt/network/default.pid")))
	st := h.Dnsmasq["default"]
	if !st.Checked || !st.Running || !st.AnswersDNS || st.PID != pid {
		t.Fatalf("dnsmasq status %+v, want running pid %d answering", st, pid)
	}
	t.Logf("healthy evidence: %s", st.Evidence)

	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil { // our own instance's dnsmasq
		t.Fatal(err)
	}
	if err := testenv.WaitFor(5*time.Second, 20*time.Millisecond, func() (bool, error) {
		return !testenv.ProcessAlive(pid), nil
	}); err != nil {
		t.Fatal("dnsmasq survived SIGKILL")
	}
	st = r.Dnsmasq(ctx, n)
	if !st.Checked || st.Running || st.AnswersDNS || !strings.Contains(st.Evidence, "dns_error=") {
		t.Fatalf("after kill: %+v", st)
	}
	t.Logf("down evidence: %s", st.Evidence)

	lvd.MustVirsh("net-destroy", "default")
	lvd.MustVirsh("net-start", "default")
	if st = r.Dnsmasq(ctx, n); !st.Running || !st.AnswersDNS {
		t.Fatalf("after network restart: %+v", st)
	}
}
