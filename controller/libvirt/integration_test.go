package libvirt

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kvmnet/kvmnet/controller/libvirt/libvirtxml"
	"github.com/kvmnet/kvmnet/controller/qga"
	"github.com/kvmnet/kvmnet/controller/snapshot"
	"github.com/kvmnet/kvmnet/scripts/lab/testenv"
)

// TestRealLibvirtd walks one private libvirtd (in its own netns and mount namespace) through the
// states the controller must tell apart: default network missing, defined but inactive, active (with
// a real DHCP lease from a client in a peer namespace), restarted; then a defined domain's NICs,
// channels and vsock CID, and a running domain's live view (vnet target, automatic channel path).
func TestRealLibvirtd(t *testing.T) {
	testenv.Require(t, "ip", "unshare", "nsenter", "mount", "libvirtd", "virtlogd", "virsh", "dnsmasq", "qemu-system-x86_64")
	ns := testenv.NewNetns(t, "lv")
	lvd := testenv.StartLibvirtd(t, ns, testenv.LibvirtdOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	src, err := Open(ctx, lvd.URI, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = src.Close() }()
	if src.Session() || src.Remote() || !strings.HasPrefix(src.URI(), "qemu:///system") {
		t.Fatalf("URI=%q session=%v remote=%v", src.URI(), src.Session(), src.Remote())
	}

	t.Run("network missing", func(t *testing.T) {
		nets, err := src.Networks(ctx)
		if err != nil || len(nets) != 0 {
			t.Fatalf("fresh libvirtd: networks %+v, err %v", nets, err)
		}
		if _, err := src.Network(ctx, "default"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Network(default) err = %v, want ErrNotFound", err)
		}
	})

	t.Run("defined but inactive", func(t *testing.T) {
		name, err := src.DefineNetwork(ctx, libvirtxml.DefaultNetworkXML)
		if err != nil || name != "default" {
			t.Fatalf("DefineNetwork = %q, %v", name, err)
		}
		n, err := src.Network(ctx, "default")
		if err != nil {
			t.Fatal(err)
		}
		if n.Active || n.Autostart || !n.Persistent || n.Forward != snapshot.ForwardNAT || n.Bridge != "virbr0" ||
			n.Subnet() != "192.168.122.0/24" || !n.HasDHCP() || len(n.Leases) != 0 {
			t.Fatalf("inactive default network read as %+v", n)
		}
		if _, err := ns.Run("ip", "link", "show", "virbr0"); err == nil {
			t.Fatal("virbr0 exists although the network is inactive")
		}
	})

	var dnsmasqPID string
	t.Run("active", func(t *testing.T) {
		if err := src.StartNetwork(ctx, "default"); err != nil {
			t.Fatal(err)
		}
		if err := src.SetNetworkAutostart(ctx, "default", true); err != nil {
			t.Fatal(err)
		}
		n, err := src.Network(ctx, "default")
		if err != nil {
			t.Fatal(err)
		}
		if !n.Active || !n.Autostart || !n.LeasesSupported || len(n.Leases) != 0 {
			t.Fatalf("active default network read as %+v", n)
		}
		if out := ns.MustRun("ip", "-4", "-o", "addr", "show", "dev", "virbr0"); !strings.Contains(out, "192.168.122.1/24") {
			t.Fatalf("virbr0: %s", out)
		}
		dnsmasqPID = strings.TrimSpace(lvd.MustNsenter("cat", "/run/libvirt/network/default.pid"))
	})

	mac, _ := net.ParseMAC("52:54:00:6b:76:01")
	t.Run("real lease", func(t *testing.T) {
		guest := testenv.NewNetns(t, "lv")
		ns.Veth("lvport0", guest, "eth0")
		ns.MustRun("ip", "link", "set", "lvport0", "master", "virbr0")
		guest.MustRun("ip", "link", "set", "eth0", "address", mac.String())
		var lease testenv.DHCPLease
		if err := testenv.WaitFor(60*time.Second, 200*time.Millisecond, func() (bool, error) {
			var err error
			lease, err = testenv.DHCPRequest(guest, "eth0", mac, "fakeguest", 8*time.Second)
			return err == nil, err
		}); err != nil {
			t.Fatalf("no lease from libvirt's dnsmasq: %v", err)
		}
		var n snapshot.Network
		if err := testenv.WaitFor(20*time.Second, 100*time.Millisecond, func() (bool, error) {
			var err error
			n, err = src.Network(ctx, "default")
			return err == nil && len(n.Leases) == 1, err
		}); err != nil {
			t.Fatalf("lease %s not reported by libvirt: %v (%+v)", lease.IP, err, n.Leases)
		}
		l := n.Leases[0]
		if l.MAC.String() != mac.String() || l.IP != lease.IP.String() || l.Prefix != 24 || l.Family != 4 ||
			l.Hostname != "fakeguest" || !l.Expiry.After(time.Now()) {
			t.Fatalf("lease read as %+v, client got %s", l, lease.IP)
		}
		// dnsmasq's status file (what libvirt reads) parses to the same lease.
		status := lvd.MustNsenter("cat", "/var/lib/libvirt/dnsmasq/virbr0.status")
		fromFile, err := libvirtxml.ParseDnsmasqStatus([]byte(status), 24, 64)
		if err != nil || len(fromFile) != 1 || fromFile[0].IP != l.IP || fromFile[0].MAC != l.MAC ||
			!fromFile[0].Expiry.Equal(l.Expiry) {
			t.Fatalf("status file %q parsed as %+v (%v), libvirt says %+v", status, fromFile, err, l)
		}
	})

	t.Run("restart", func(t *testing.T) {
		if err := src.RestartNetwork(ctx, "default"); err != nil {
			t.Fatal(err)
		}
		n, err := src.Network(ctx, "default")
		if err != nil || !n.Active {
			t.Fatalf("after restart: %+v %v", n, err)
		}
		pid := strings.TrimSpace(lvd.MustNsenter("cat", "/run/libvirt/network/default.pid"))
		if pid == dnsmasqPID || pid == "" {
			t.Fatalf("dnsmasq pid %q before and %q after restart: not restarted", dnsmasqPID, pid)
		}
		if p, _ := strconv.Atoi(pid); !testenv.ProcessAlive(p) {
			t.Fatalf("dnsmasq %s not running after restart", pid)
		}
	})

	chanDir := t.TempDir()
	kvmnetSock := filepath.Join(chanDir, "vm-defined.kvmnet.sock")
	t.Run("defined domain", func(t *testing.T) {
		x := `<domain type='qemu'><name>vm-defined</name><memory unit='MiB'>64</memory>
<os><type arch='x86_64' machine='pc'>hvm</type></os><devices>
<interface type='network'><mac address='52:54:00:6b:76:10'/><source network='default'/><model type='virtio'/></interface>
<interface type='bridge'><mac address='52:54:00:6B:76:11'/><source bridge='br-lab'/><link state='down'/></interface>
<channel type='unix'><source mode='bind' path='` + kvmnetSock + `'/><target type='virtio' name='org.kvmnet.agent.0'/></channel>
<channel type='unix'><source mode='bind'/><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
<vsock model='virtio'><cid auto='no' address='17'/></vsock>
</devices></domain>`
		if err := src.DefineDomainXML(ctx, x); err != nil {
			t.Fatal(err)
		}
		d, err := src.Domain(ctx, "vm-defined")
		if err != nil {
			t.Fatal(err)
		}
		if d.State != "shut off" || d.Running() || !d.Persistent || d.ID != 0 || d.VsockCID != 17 || len(d.NICs) != 2 {
			t.Fatalf("defined domain read as %+v", d)
		}
		if n := d.NICs[0]; n.Type != "network" || n.Network != "default" || n.MAC != "52:54:00:6b:76:10" || n.Target != "" ||
			n.Model != "virtio" || n.LinkState != "up" {
			t.Fatalf("NIC 0: %+v", n)
		}
		if n := d.NICs[1]; n.Type != "bridge" || n.Bridge != "br-lab" || n.MAC != "52:54:00:6b:76:11" || n.LinkState != "down" {
			t.Fatalf("NIC 1: %+v", n)
		}
		if c, ok := d.Channel(snapshot.ChannelKvmnet); !ok || c.Path != kvmnetSock || c.Type != "unix" || c.State != "" {
			t.Fatalf("kvmnet channel: %+v %v", c, ok)
		}
		if c, ok := d.Channel(snapshot.ChannelQemuGA); !ok || c.Path != "" {
			t.Fatalf("qemu-ga channel (automatic path, not started): %+v %v", c, ok)
		}
	})

	t.Run("running domain", func(t *testing.T) {
		x := `<domain type='qemu'><name>vm-run</name><memory unit='MiB'>64</memory>
<os><type arch='x86_64' machine='pc'>hvm</type></os><features><acpi/><apic/></features><devices>
<interface type='network'><mac address='52:54:00:6b:76:20'/><source network='default'/><model type='virtio'/></interface>
<channel type='unix'><source mode='bind'/><target type='virtio' name='org.kvmnet.agent.0'/></channel>
</devices></domain>`
		if err := src.DefineDomainXML(ctx, x); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		lvd.MustVirsh("start", "vm-run")
		t.Logf("domain start (includes the QEMU capabilities probe of a fresh instance): %s", time.Since(start).Round(time.Millisecond))
		d, err := src.Domain(ctx, "vm-run")
		if err != nil {
			t.Fatal(err)
		}
		if !d.Running() || d.ID < 1 || len(d.NICs) != 1 {
			t.Fatalf("running domain read as %+v", d)
		}
		n := d.NICs[0]
		if n.Bridge != "virbr0" || !strings.HasPrefix(n.Target, "vnet") {
			t.Fatalf("running NIC: %+v", n)
		}
		if out := ns.MustRun("ip", "-o", "link", "show", "dev", n.Target); !strings.Contains(out, "master virbr0") {
			t.Fatalf("%s not on virbr0: %s", n.Target, out)
		}
		c, ok := d.Channel(snapshot.ChannelKvmnet)
		want := "/var/lib/libvirt/qemu/channel/target/domain-" + strconv.Itoa(d.ID) + "-vm-run/org.kvmnet.agent.0"
		if !ok || c.Path != want || c.State != "disconnected" {
			t.Fatalf("kvmnet channel %+v, want automatic path %s, disconnected", c, want)
		}
		lvd.MustNsenter("test", "-S", c.Path)
		secure, err := src.DomainXMLSecure(ctx, "vm-run")
		if err != nil || strings.Contains(secure, "vnet") || !strings.Contains(secure, "org.kvmnet.agent.0") {
			t.Fatalf("secure inactive XML (%v): %s", err, secure)
		}
		inactive, err := src.DomainXML(ctx, "vm-run", true)
		if err != nil || strings.Contains(inactive, "vnet") || strings.Contains(inactive, "domain-") {
			t.Fatalf("inactive XML carries live details (%v): %s", err, inactive)
		}
	})

	// qemu-guest-agent errors from a real libvirtd map onto qga's sentinels (no guest OS runs here).
	t.Run("qemu-agent-command errors", func(t *testing.T) {
		for _, tc := range []struct {
			dom  string
			want error
		}{
			{"vm-defined", qga.ErrDomainNotRunning}, // shut off
			{"vm-run", qga.ErrNotConfigured},        // running, no org.qemu.guest_agent.0 channel
			{"no-such-vm", qga.ErrNoDomain},
		} {
			_, err := src.QemuAgentCommand(ctx, tc.dom, `{"execute":"guest-ping"}`, 2*time.Second)
			if !errors.Is(err, tc.want) {
				t.Errorf("%s: err = %v, want %v", tc.dom, err, tc.want)
			}
		}
	})

	t.Run("fill", func(t *testing.T) {
		start := time.Now()
		var snap snapshot.Snapshot
		if err := src.Fill(ctx, &snap); err != nil {
			t.Fatal(err)
		}
		t.Logf("Fill of %d networks and %d domains from a real libvirtd: %s", len(snap.Networks), len(snap.Domains), time.Since(start))
		if len(snap.Errors) != 0 || len(snap.Networks) != 1 || len(snap.Domains) != 2 || snap.Session {
			t.Fatalf("snapshot: errors=%v networks=%d domains=%d", snap.Errors, len(snap.Networks), len(snap.Domains))
		}
	})
	_ = os.Remove(kvmnetSock)
}
