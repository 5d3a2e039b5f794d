package testenv

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// QEMUMode chooses how the private libvirtd runs QEMU (its qemu.conf).
type QEMUMode int

// QEMU modes.
const (
	// QEMURoot runs QEMU as root with no security driver and remember_owner = 0: the simplest setup,
	// no permission surprises with shared kernels or sockets.
	QEMURoot QEMUMode = iota
	// QEMUStock mimics Debian's stock qemu.conf: QEMU runs as libvirt-qemu, group kvm (the group is
	// named explicitly: without it libvirt re-probes QEMU capabilities on every call). Use it to test who can
	// reach the sockets QEMU creates.
	QEMUStock
)

// DefaultNetworkMode says whether the instance starts with libvirt's stock "default" network.
type DefaultNetworkMode int

// Default network modes.
const (
	// DefaultNetworkNone starts without any network defined ("network missing").
	DefaultNetworkNone DefaultNetworkMode = iota
	// DefaultNetworkDefined defines the stock default network (as libvirt-daemon-config-network
	// ships it) but leaves it inactive and without autostart.
	DefaultNetworkDefined
	// DefaultNetworkAutostart defines it with autostart on, so libvirtd starts it at launch.
	DefaultNetworkAutostart
)

// StockDefaultNetworkXML is what Debian's libvirt-daemon-config-network installs as
// /etc/libvirt/qemu/networks/default.xml (from /usr/share/libvirt/networks/default.xml).
const StockDefaultNetworkXML = `<network>
  <name>default</name>
  <bridge name='virbr0'/>
  <forward/>
  <ip address='192.168.122.1' netmask='255.255.255.0'>
    <dhcp>
      <range start='192.168.122.2' end='192.168.122.254'/>
    </dhcp>
  </ip>
</network>
`

// LibvirtdOptions configure StartLibvirtd. The zero value is: QEMU as root, no networks.
type LibvirtdOptions struct {
	// QEMU selects the qemu.conf mode.
	QEMU QEMUMode
	// DefaultNetwork selects whether the stock default network exists at start.
	DefaultNetwork DefaultNetworkMode
	// ExtraQEMUConf is appended to the generated qemu.conf.
	ExtraQEMUConf string
	// ExtraLibvirtdConf is appended to the generated libvirtd.conf.
	ExtraLibvirtdConf string
	// Files are extra files to create under the instance's /etc/libvirt (path relative to it).
	Files map[string]string
	// ReadyTimeout bounds the wait for libvirtd to answer (default 60 s: the machine is shared).
	ReadyTimeout time.Duration
}

// Libvirtd is a private libvirtd (plus virtlogd) running inside a test's network namespace and its own
// mount namespace: /run/libvirt, /var/lib/libvirt, /var/cache/libvirt and /var/log/libvirt are tmpfs
// there and /etc/libvirt is a generated directory, so parallel instances never share state. It is
// stopped, with everything it spawned (dnsmasq, QEMU), when the test ends.
type Libvirtd struct {
	// URI to connect to it from the host, e.g. qemu:///system?socket=/tmp/lv123/sock/libvirt-sock.
	URI string
	// PID of libvirtd.
	PID int
	// SocketDir holds libvirt-sock, libvirt-sock-ro and libvirt-admin-sock (outside the mount ns).
	SocketDir string
	// EtcDir is the host-visible directory bind-mounted over /etc/libvirt inside the instance.
	EtcDir string
	// Netns is the network namespace libvirtd runs in.
	Netns *Netns

	t         testing.TB
	holder    *Proc
	daemon    *Proc
	virtlogd  *Proc
	baseDir   string
	stopped   bool
	holderPID int
}

// StartLibvirtd starts a private libvirtd in ns and waits until it answers. The test fails if it
// cannot. Needs root, libvirtd, virtlogd, virsh, unshare, nsenter and mount.
func StartLibvirtd(t testing.TB, ns *Netns, opts LibvirtdOptions) *Libvirtd {
	t.Helper()
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 60 * time.Second
	}
	ensureLibvirtUsers(t, opts.QEMU)

	// Short base dir: unix socket paths are limited to 108 bytes and t.TempDir() paths are long.
	base, err := os.MkdirTemp("", "kvmt-lv")
	if err != nil {
		t.Fatalf("libvirtd: temp dir: %v", err)
	}
	lv := &Libvirtd{
		t: t, Netns: ns, baseDir: base,
		SocketDir: filepath.Join(base, "sock"),
		EtcDir:    filepath.Join(base, "etc"),
	}
	t.Cleanup(lv.stop)
	lv.URI = "qemu:///system?socket=" + filepath.Join(lv.SocketDir, "libvirt-sock")
	if err := lv.writeEtc(opts); err != nil {
		t.Fatalf("libvirtd: %v", err)
	}

	// A holder process owns the private mount namespace; everything else enters it with nsenter, so
	// no shell script is needed to set up mounts before exec.
	lv.holder = ns.Start("libvirtd-mountns", nil, "unshare", "-m", "--propagation", "private", "sleep", "infinity")
	lv.holderPID = lv.holder.Cmd.Process.Pid
	self, _ := os.Readlink("/proc/self/ns/mnt")
	if err := WaitFor(10*time.Second, 10*time.Millisecond, func() (bool, error) {
		if lv.holder.Exited() {
			return false, fmt.Errorf("holder exited: %s", lv.holder.Output())
		}
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", lv.holderPID))
		mnt, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", lv.holderPID))
		return strings.TrimSpace(string(comm)) == "sleep" && mnt != "" && mnt != self,
			fmt.Errorf("mount namespace holder not ready (comm=%q)", comm)
	}); err != nil {
		t.Fatalf("libvirtd: %v", err)
	}

	mounts := [][]string{
		{"mount", "-t", "tmpfs", "-o", "mode=0755", "kvmt-lv-run", "/run/libvirt"},
		{"mount", "-t", "tmpfs", "-o", "mode=0755", "kvmt-lv-lib", "/var/lib/libvirt"},
		{"mount", "-t", "tmpfs", "-o", "mode=0755", "kvmt-lv-cache", "/var/cache/libvirt"},
		{"mount", "-t", "tmpfs", "-o", "mode=0700", "kvmt-lv-log", "/var/log/libvirt"},
		{"mount", "--bind", lv.EtcDir, "/etc/libvirt"},
		// Private /etc/sysctl.d: `kvmnetctl host fix` persists ip_forward under /proc/PID/root/etc,
		// which would otherwise be the machine's own /etc/sysctl.d.
		{"mount", "-t", "tmpfs", "-o", "mode=0755", "kvmt-lv-sysctld", "/etc/sysctl.d"},
	}
	// Hide the machine's system D-Bus from libvirtd (it probes firewalld/logind through it).
	if st, err := os.Stat("/run/dbus"); err == nil && st.IsDir() {
		mounts = append(mounts, []string{"mount", "-t", "tmpfs", "-o", "mode=0755", "kvmt-lv-dbus", "/run/dbus"})
	}
	for _, m := range mounts {
		if err := os.MkdirAll(m[len(m)-1], 0o755); err != nil {
			t.Fatalf("libvirtd: mountpoint: %v", err)
		}
		if out, err := lv.nsenterAt(lv.holderPID, m...); err != nil {
			t.Fatalf("libvirtd: %s: %v: %s", strings.Join(m, " "), err, out)
		}
	}
	// dnsmasq runs as libvirt-dnsmasq and must traverse /var/lib/libvirt/dnsmasq: libvirtd creates it.
	env := []string{"DBUS_SYSTEM_BUS_ADDRESS=unix:path=/nonexistent/kvmnet-test-no-system-bus"}

	lv.virtlogd = ns.StartCmd("virtlogd", lv.nsenterCmd(lv.holderPID, "virtlogd",
		"--pid-file", "/run/libvirt/virtlogd.pid"), env)
	if err := WaitFor(20*time.Second, 20*time.Millisecond, func() (bool, error) {
		if lv.virtlogd.Exited() {
			return false, fmt.Errorf("virtlogd exited: %s", lv.virtlogd.Output())
		}
		_, err := lv.nsenterAt(lv.holderPID, "test", "-S", "/run/libvirt/virtlogd-sock")
		return err == nil, fmt.Errorf("virtlogd socket not there yet")
	}); err != nil {
		t.Fatalf("libvirtd: %v", err)
	}

	lv.daemon = ns.StartCmd("libvirtd", lv.nsenterCmd(lv.holderPID, "libvirtd", "--config",
		"/etc/libvirt/libvirtd.conf", "--pid-file", "/run/libvirt/libvirtd.pid"), env)
	lv.PID = lv.daemon.Cmd.Process.Pid
	if err := WaitFor(opts.ReadyTimeout, 50*time.Millisecond, func() (bool, error) {
		if lv.daemon.Exited() {
			return false, fmt.Errorf("libvirtd exited: %s", lv.daemon.Output())
		}
		if _, err := os.Stat(filepath.Join(lv.SocketDir, "libvirt-sock")); err != nil {
			return false, err
		}
		out, err := lv.Virsh("uri")
		return err == nil, fmt.Errorf("virsh uri: %v: %s", err, out)
	}); err != nil {
		t.Fatalf("libvirtd did not become ready: %v\noutput:\n%s", err, lv.daemon.Output())
	}
	return lv
}

// ensureLibvirtUsers creates the system users libvirt 9.0 insists on (and group kvm for the stock
// mode) when they are missing.
func ensureLibvirtUsers(t testing.TB, mode QEMUMode) {
	t.Helper()
	if _, err := exec.Command("getent", "group", "kvm").Output(); err != nil {
		if out, err := exec.Command("groupadd", "-r", "kvm").CombinedOutput(); err != nil {
			t.Fatalf("libvirtd: groupadd kvm: %v: %s", err, out)
		}
	}
	for _, u := range []string{"libvirt-qemu", "libvirt-dnsmasq"} {
		if _, err := exec.Command("id", u).Output(); err == nil {
			continue
		}
		// Racing creators (parallel tests) are fine: a second useradd fails, the user then exists.
		out, err := exec.Command("useradd", "-r", "-U", "-M", "-s", "/usr/sbin/nologin", u).CombinedOutput()
		if _, err2 := exec.Command("id", u).Output(); err2 != nil {
			t.Fatalf("libvirtd: useradd %s: %v: %s", u, err, out)
		}
	}
	_ = mode
}

func (lv *Libvirtd) writeEtc(opts LibvirtdOptions) error {
	files := map[string]string{}
	files["libvirtd.conf"] = fmt.Sprintf("# kvmnet test instance\nunix_sock_dir = %q\nunix_sock_rw_perms = \"0700\"\n"+
		"auth_unix_rw = \"none\"\nauth_unix_ro = \"none\"\n%s", lv.SocketDir, opts.ExtraLibvirtdConf)
	switch opts.QEMU {
	case QEMUStock:
		files["qemu.conf"] = "# Debian stock behaviour: QEMU as libvirt-qemu:kvm\nuser = \"libvirt-qemu\"\n" +
			"group = \"kvm\"\n" + opts.ExtraQEMUConf
	default:
		files["qemu.conf"] = "user = \"root\"\ngroup = \"root\"\nsecurity_driver = \"none\"\nremember_owner = 0\n" +
			opts.ExtraQEMUConf
	}
	files["virtlogd.conf"] = ""
	switch opts.DefaultNetwork {
	case DefaultNetworkDefined, DefaultNetworkAutostart:
		files["qemu/networks/default.xml"] = StockDefaultNetworkXML
	}
	for k, v := range opts.Files {
		files[k] = v
	}
	for _, d := range []string{lv.SocketDir, filepath.Join(lv.EtcDir, "qemu", "networks", "autostart")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	for name, content := range files {
		p := filepath.Join(lv.EtcDir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return err
		}
	}
	if opts.DefaultNetwork == DefaultNetworkAutostart {
		// libvirt follows the symlink inside its own mount namespace, where the dir is /etc/libvirt.
		if err := os.Symlink("/etc/libvirt/qemu/networks/default.xml",
			filepath.Join(lv.EtcDir, "qemu", "networks", "autostart", "default.xml")); err != nil {
			return err
		}
	}
	return nil
}

func (lv *Libvirtd) nsenterCmd(pid int, argv ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"-t", strconv.Itoa(pid), "-m", "-n", "--"}, argv...)...)
}

func (lv *Libvirtd) nsenterAt(pid int, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"-t", strconv.Itoa(pid), "-m", "-n", "--"}, argv...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Nsenter runs argv inside libvirtd's mount and network namespaces (so /run/libvirt, its pid files,
// virbr0 and its firewall are the real ones there) and returns the combined output.
func (lv *Libvirtd) Nsenter(argv ...string) (string, error) {
	out, err := lv.nsenterAt(lv.holderPID, argv...)
	if err != nil {
		return out, fmt.Errorf("nsenter libvirtd %d: %s: %w: %s", lv.PID, strings.Join(argv, " "), err, out)
	}
	return out, nil
}

// MustNsenter is Nsenter that fails the test on error.
func (lv *Libvirtd) MustNsenter(argv ...string) string {
	lv.t.Helper()
	out, err := lv.Nsenter(argv...)
	if err != nil {
		lv.t.Fatal(err)
	}
	return out
}

// NsenterCmd returns an *exec.Cmd that runs argv in libvirtd's mount and network namespaces.
func (lv *Libvirtd) NsenterCmd(argv ...string) *exec.Cmd { return lv.nsenterCmd(lv.holderPID, argv...) }

// HolderPID is the PID of the process that owns the instance's mount namespace (alive for the whole
// test, unlike libvirtd when a test stops it).
func (lv *Libvirtd) HolderPID() int { return lv.holderPID }

// Virsh runs `virsh -c URI argv...` from the host side and returns stdout (stderr on error).
func (lv *Libvirtd) Virsh(argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "virsh", append([]string{"-q", "-c", lv.URI}, argv...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String() + stderr.String(), fmt.Errorf("virsh %s: %w: %s", strings.Join(argv, " "), err,
			strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// MustVirsh is Virsh that fails the test on error.
func (lv *Libvirtd) MustVirsh(argv ...string) string {
	lv.t.Helper()
	out, err := lv.Virsh(argv...)
	if err != nil {
		lv.t.Fatal(err)
	}
	return out
}

// Output is what libvirtd printed so far (warnings and errors).
func (lv *Libvirtd) Output() string {
	if lv.daemon == nil {
		return ""
	}
	return lv.daemon.Output()
}

// Stop stops the instance now (also done automatically when the test ends): running domains and
// networks are destroyed through libvirt, then libvirtd and virtlogd, then any process left in the
// instance's mount namespace (dnsmasq, QEMU) is killed by PID.
func (lv *Libvirtd) Stop() { lv.stop() }

func (lv *Libvirtd) stop() {
	if lv.stopped {
		return
	}
	lv.stopped = true
	if lv.daemon != nil && !lv.daemon.Exited() {
		if out, err := lv.Virsh("list", "--name"); err == nil {
			for _, d := range strings.Fields(out) {
				_, _ = lv.Virsh("destroy", d)
			}
		}
		if out, err := lv.Virsh("net-list", "--name"); err == nil {
			for _, n := range strings.Fields(out) {
				_, _ = lv.Virsh("net-destroy", n)
			}
		}
	}
	if lv.daemon != nil {
		lv.daemon.Stop()
	}
	if lv.virtlogd != nil {
		lv.virtlogd.Stop()
	}
	if lv.holderPID != 0 {
		killMountNamespace(lv.holderPID)
	}
	if lv.holder != nil {
		lv.holder.Stop()
	}
	_ = os.RemoveAll(lv.baseDir)
}

// ProcessAlive reports whether pid names a live process (zombies count as gone: their parent, maybe
// a PID 1 that does not reap, is all that holds them).
func ProcessAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return false
	}
	return s[i+2] != 'Z' && s[i+2] != 'X'
}

// killMountNamespace kills every process (other than the holder) whose mount namespace is the
// holder's: only processes this instance started can be there.
func killMountNamespace(holder int) {
	target, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", holder))
	if err != nil {
		return
	}
	find := func() []int {
		var pids []int
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == holder {
				continue
			}
			if l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid)); err == nil && l == target {
				pids = append(pids, pid)
			}
		}
		return pids
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		pids := find()
		if len(pids) == 0 {
			return
		}
		for _, p := range pids {
			_ = syscall.Kill(p, sig)
		}
		_ = WaitFor(3*time.Second, 20*time.Millisecond, func() (bool, error) { return len(find()) == 0, nil })
	}
}
