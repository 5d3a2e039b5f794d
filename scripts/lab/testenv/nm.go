package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

// NM is a real NetworkManager running inside a test namespace, attached to a private Bus, with its
// own mount namespace (/sys read-only so it manages devices without udev; private /run and
// /var/lib/NetworkManager) and a keyfile directory in the test's temporary directory.
type NM struct {
	// Proc is the NetworkManager process (its PID is NetworkManager's own).
	Proc *Proc
	// Bus it is attached to.
	Bus *Bus
	// ConnDir is the keyfile directory ([keyfile] path) holding its profiles.
	ConnDir string
	// ConfigFile is the NetworkManager.conf it was started with.
	ConfigFile string
	// RunDir is its /run/NetworkManager (per-device state; its --pid-file points here), kept across
	// Stop/Kill and Start.
	RunDir string

	t    testing.TB
	ns   *Netns
	env  []string
	argv []string
}

// NMOptions tunes StartNM.
type NMOptions struct {
	// UnmanagedInterfaces are listed as [keyfile] unmanaged-devices=interface-name:X.
	UnmanagedInterfaces []string
	// Keyfiles are written into ConnDir before NetworkManager starts: file name → content
	// (mode 0600, as NetworkManager requires).
	Keyfiles map[string]string
}

// nmConfig keeps the test NetworkManager away from everything global: no resolv.conf, no hostname,
// no polkit, no connectivity checks, no default profiles.
const nmConfig = `[main]
plugins=keyfile
no-auto-default=*
dns=none
rc-manager=unmanaged
hostname-mode=none
auth-polkit=false
dhcp=internal

[keyfile]
path=%s
%s
[connectivity]
enabled=false

[logging]
level=INFO
domains=ALL:INFO,DHCP4:DEBUG,IP4:DEBUG,DEVICE:DEBUG
`

// nmWrapper runs as the first process of NetworkManager's private mount namespace (unshare -m, private
// propagation). The script text is constant; paths arrive as positional arguments.
const nmWrapper = `set -e
mount -o remount,ro /sys
mount -t tmpfs -o mode=0755 kvmnet-test-run /run
mkdir -p /run/NetworkManager
mount --bind "$1" /var/lib/NetworkManager
mount --bind "$2" /run/NetworkManager
shift 2
exec "$@"
`

// StartNM starts NetworkManager --no-daemon inside ns on bus, and waits until it has finished
// starting up (Startup=false on the bus).
func StartNM(t testing.TB, ns *Netns, bus *Bus, o NMOptions) *NM {
	t.Helper()
	dir := t.TempDir()
	connDir := filepath.Join(dir, "system-connections")
	varLib := filepath.Join(dir, "var-lib")
	// /run/NetworkManager outlives a Stop/Start, as /run does across `systemctl restart
	// NetworkManager`: NetworkManager keeps there which profile each device runs, and without it a
	// restarted NetworkManager takes over a configured device with a generated in-memory profile.
	runNM := filepath.Join(dir, "run-nm")
	confD := filepath.Join(dir, "conf.d")
	for _, d := range []string{connDir, varLib, runNM, confD} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range o.Keyfiles {
		if err := os.WriteFile(filepath.Join(connDir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	unmanaged := ""
	if len(o.UnmanagedInterfaces) > 0 {
		var parts []string
		for _, n := range o.UnmanagedInterfaces {
			parts = append(parts, "interface-name:"+n)
		}
		unmanaged = "unmanaged-devices=" + strings.Join(parts, ";") + "\n"
	}
	conf := filepath.Join(dir, "NetworkManager.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, nmConfig, connDir, unmanaged), 0o600); err != nil {
		t.Fatal(err)
	}
	argv := []string{"unshare", "-m", "--propagation", "private", "--", "sh", "-c", nmWrapper, "nm-wrapper", varLib, runNM,
		"NetworkManager", "--debug", "--config=" + conf, "--config-dir=" + confD,
		"--system-config-dir=" + confD, "--state-file=" + filepath.Join(varLib, "NetworkManager.state"),
		"--intern-config=" + filepath.Join(varLib, "NetworkManager-intern.conf"),
		"--pid-file=/run/NetworkManager/NetworkManager.pid"}
	p := ns.Start("NetworkManager", []string{"DBUS_SYSTEM_BUS_ADDRESS=" + bus.Address}, argv...)
	nm := &NM{Proc: p, Bus: bus, ConnDir: connDir, ConfigFile: conf, RunDir: runNM, t: t, ns: ns,
		env: []string{"DBUS_SYSTEM_BUS_ADDRESS=" + bus.Address}, argv: argv}
	// Stop NetworkManager before t.TempDir's removal (cleanups run last-in first-out; the namespace's own
	// stop comes too late): otherwise it still writes var-lib while the directory goes, and the test
	// fails with "TempDir RemoveAll cleanup: ... directory not empty" (seen in a CI run of TestSubscribe).
	t.Cleanup(p.Stop)
	// A frozen NetworkManager ignores SIGTERM: thaw it before it is stopped.
	t.Cleanup(func() { _ = nm.Signal(syscall.SIGCONT) })
	if err := nm.WaitReady(30 * time.Second); err != nil {
		t.Fatalf("NetworkManager in %s: %v; output:\n%s", ns.Name, err, p.Output())
	}
	return nm
}

// Stop stops NetworkManager by its PID (SIGTERM, as `systemctl stop NetworkManager` does; SIGKILL
// after 3 s) and waits until it has exited. Its keyfiles and state directory stay for Start.
func (n *NM) Stop() {
	_ = n.Signal(syscall.SIGCONT) // a frozen NetworkManager ignores SIGTERM
	n.Proc.Stop()
}

// Kill crashes NetworkManager: SIGKILL to its PID alone (as a segfault or the OOM killer ends it;
// systemd's Restart=on-failure then starts it again), and waits until it is reaped. Unlike Stop it
// gets no chance to clean up: its devices keep their addresses, its state in RunDir is whatever it
// wrote last, and the bus releases its names only because its socket closes. (It runs --no-daemon,
// as under systemd, so it wrote no pid file to leave behind.) Start brings it back.
func (n *NM) Kill() {
	n.t.Helper()
	if err := n.Signal(syscall.SIGKILL); err != nil && !n.Proc.Exited() {
		n.t.Fatalf("kill NetworkManager (pid %d): %v", n.PID(), err)
	}
	select {
	case <-n.Proc.done:
	case <-time.After(10 * time.Second):
		n.t.Fatalf("NetworkManager (pid %d) not reaped 10 s after SIGKILL", n.PID())
	}
	// Reaped: its PID may be reused, so the cleanup's Stop must not signal it any more.
	n.Proc.once.Do(func() {})
}

// Start starts NetworkManager again after Stop or Kill, with the same configuration, keyfile directory,
// state directory and bus (the second half of `systemctl restart NetworkManager`), and waits until it
// owns its bus name and answers (not for Startup=false: that waits for pending activations, e.g. a
// DHCP profile whose server never answers). Proc is the new process afterwards.
func (n *NM) Start() {
	n.t.Helper()
	if !n.Proc.Exited() {
		n.t.Fatalf("NetworkManager (pid %d) still runs: Stop or Kill it first", n.PID())
	}
	p := n.ns.Start("NetworkManager", n.env, n.argv...)
	n.Proc = p
	n.t.Cleanup(p.Stop) // before t.TempDir's removal, as in StartNM
	if err := n.waitAnswers(30 * time.Second); err != nil {
		n.t.Fatalf("NetworkManager restarted in %s: %v; output:\n%s", n.ns.Name, err, p.Output())
	}
}

// PID is NetworkManager's process id.
func (n *NM) PID() int { return n.Proc.Cmd.Process.Pid }

// Signal sends sig to NetworkManager (SIGSTOP freezes it, SIGCONT thaws it).
func (n *NM) Signal(sig syscall.Signal) error { return syscall.Kill(n.PID(), sig) }

// WaitReady waits until NetworkManager owns its bus name and reports Startup=false.
func (n *NM) WaitReady(timeout time.Duration) error {
	return n.pollProperty(timeout, 50*time.Millisecond, "Startup", func(v dbus.Variant) bool {
		startup, _ := v.Value().(bool)
		return !startup
	})
}

// waitAnswers waits until NetworkManager answers on the bus: its Version property is readable.
func (n *NM) waitAnswers(timeout time.Duration) error {
	return n.pollProperty(timeout, 20*time.Millisecond, "Version", func(dbus.Variant) bool { return true })
}

// pollProperty reads NetworkManager's property prop every interval until done accepts its value,
// failing at once if the process exits; a read error is retried until timeout and then returned.
func (n *NM) pollProperty(timeout, interval time.Duration, prop string, done func(dbus.Variant) bool) error {
	conn, err := dbus.Connect(n.Bus.Address)
	if err != nil {
		return fmt.Errorf("connect to private bus %s: %w", n.Bus.Address, err)
	}
	defer conn.Close()
	return WaitFor(timeout, interval, func() (bool, error) {
		if n.Proc.Exited() {
			return false, fmt.Errorf("NetworkManager exited")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		var v dbus.Variant
		err := conn.Object("org.freedesktop.NetworkManager", "/org/freedesktop/NetworkManager").
			CallWithContext(ctx, "org.freedesktop.DBus.Properties.Get", dbus.FlagNoAutoStart,
				"org.freedesktop.NetworkManager", prop).Store(&v)
		if err != nil {
			return false, err
		}
		return done(v), nil
	})
}

// Keyfile returns the content of a keyfile in ConnDir.
func (n *NM) Keyfile(name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(n.ConnDir, name))
	return string(b), err
}

// GuestNIC is a veth end inside the guest namespace, named like a real guest NIC.
type GuestNIC struct {
	// Name in the guest, e.g. "enp1s0", "ens3".
	Name string
	// MAC, lower case, e.g. "52:54:00:12:34:01".
	MAC string
	// OnBridge puts the peer end on the DHCP bridge; false leaves it unplugged from any DHCP server
	// (a decoy, or a NIC that cannot get a lease).
	OnBridge bool
}

// NMLab is a guest namespace running NetworkManager on a private bus, whose NICs are veths to a
// "host" namespace where a bridge with dnsmasq serves DHCP.
type NMLab struct {
	// Guest is the namespace NetworkManager runs in (the guest's view).
	Guest *Netns
	// Host holds the bridge and dnsmasq.
	Host *Netns
	// Bus is the private system bus NetworkManager is on.
	Bus *Bus
	// NM is the running NetworkManager.
	NM *NM
	// DHCP is the dnsmasq on the bridge.
	DHCP *Dnsmasq
	// NICs as created.
	NICs []GuestNIC
	// BridgeCIDR is the bridge address, e.g. "10.77.0.1/24".
	BridgeCIDR string
}

// NMLabOptions describes an NMLab.
type NMLabOptions struct {
	// NICs to create in the guest namespace.
	NICs []GuestNIC
	// NM options (keyfiles present before start, unmanaged devices).
	NM NMOptions
	// DnsmasqExtra are extra dnsmasq arguments.
	DnsmasqExtra []string
	// NoNM leaves NetworkManager unstarted (Bus is still started).
	NoNM bool
	// Prefix of the two namespaces' names (default "nm"): the prefix of the engineer or test that
	// owns them.
	Prefix string
}

// NewNMLab builds an NMLab: two namespaces with Prefix ("nm" by default), the bridge 10.77.0.1/24 with
// dnsmasq leasing 10.77.0.100-199, the NICs, the private bus and NetworkManager.
func NewNMLab(t testing.TB, o NMLabOptions) *NMLab {
	t.Helper()
	prefix := o.Prefix
	if prefix == "" {
		prefix = "nm"
	}
	guest := NewNetns(t, prefix)
	host := NewNetns(t, prefix)
	lab := &NMLab{Guest: guest, Host: host, NICs: o.NICs, BridgeCIDR: "10.77.0.1/24"}
	host.Bridge("br0", lab.BridgeCIDR)
	for i, nic := range o.NICs {
		peer := fmt.Sprintf("p%d", i)
		guest.Veth(nic.Name, host, peer)
		if nic.MAC != "" {
			guest.MustRun("ip", "link", "set", nic.Name, "address", nic.MAC)
		}
		if nic.OnBridge {
			host.BridgePort(peer, "br0")
		}
	}
	lab.DHCP = StartDnsmasq(t, host, DnsmasqOptions{Interface: "br0",
		Range: "10.77.0.100,10.77.0.199,255.255.255.0,1h", Extra: o.DnsmasqExtra})
	lab.Bus = StartBus(t, guest)
	if !o.NoNM {
		lab.NM = StartNM(t, guest, lab.Bus, o.NM)
	}
	return lab
}

// IPv4 returns the IPv4 addresses (CIDR) on ifname inside the guest namespace.
func (l *NMLab) IPv4(ifname string) []string {
	out, err := l.Guest.Run("ip", "-4", "-o", "addr", "show", "dev", ifname)
	if err != nil {
		return nil
	}
	var addrs []string
	for _, line := range strings.Split(out, "\n") {
		fs := strings.Fields(line)
		for i := 0; i+1 < len(fs); i++ {
			if fs[i] == "inet" {
				addrs = append(addrs, fs[i+1])
			}
		}
	}
	return addrs
}
