package channel_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kvmnet/kvmnet/controller/channel"
	"github.com/kvmnet/kvmnet/controller/channel/libvirtdomains"
	"github.com/kvmnet/kvmnet/controller/libvirt"
	"github.com/kvmnet/kvmnet/controller/snapshot"
	"github.com/kvmnet/kvmnet/controller/sockaccess"
	"github.com/kvmnet/kvmnet/scripts/lab/testenv"
)

// connectHelperEnv turns the test binary into a tiny client: it connects to the unix socket named by
// the variable and exits 0 (connected), 13 (EACCES) or 1 (any other error). The security test runs it
// as an unprivileged host user through setpriv.
const connectHelperEnv = "KVMNET_PK_CONNECT"

func TestMain(m *testing.M) {
	if p := os.Getenv(connectHelperEnv); p != "" {
		os.Exit(connectHelper(p))
	}
	os.Exit(m.Run())
}

func connectHelper(path string) int {
	c, err := net.Dial("unix", path)
	if err != nil {
		fmt.Println("connect:", err)
		if errors.Is(err, syscall.EACCES) {
			return 13
		}
		return 1
	}
	_ = c.Close()
	fmt.Println("connected")
	return 0
}

const testUser = "kvmnet-test"

// ensureTestUser creates group kvm and the unprivileged user kvmnet-test, a member of kvm (the way
// desktop users join kvm to use /dev/kvm), when missing.
func ensureTestUser(t *testing.T) {
	t.Helper()
	if _, err := exec.Command("getent", "group", "kvm").Output(); err != nil {
		if out, err := exec.Command("groupadd", "-r", "kvm").CombinedOutput(); err != nil {
			t.Fatalf("groupadd kvm: %v: %s", err, out)
		}
	}
	if _, err := exec.Command("id", testUser).Output(); err != nil {
		out, err := exec.Command("useradd", "-M", "-U", "-G", "kvm", "-s", "/usr/sbin/nologin", testUser).CombinedOutput()
		if _, err2 := exec.Command("id", testUser).Output(); err2 != nil {
			t.Fatalf("useradd %s: %v: %s", testUser, err, out)
		}
	}
	out, _ := exec.Command("id", "-nG", testUser).Output()
	if !strings.Contains(" "+string(out)+" ", " kvm ") {
		if out, err := exec.Command("usermod", "-aG", "kvm", testUser).CombinedOutput(); err != nil {
			t.Fatalf("usermod -aG kvm %s: %v: %s", testUser, err, out)
		}
	}
}

// minimalDomain boots nothing (no disk, no kernel): enough for QEMU to run and create its sockets.
func minimalDomain(name, channelXML string) string {
	return `<domain type='qemu'>
  <name>` + name + `</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <cpu mode='custom' match='exact' check='none'><model fallback='allow'>qemu64</model></cpu>
  <features><acpi/><apic/></features>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
` + channelXML + `    <memballoon model='none'/>
  </devices>
</domain>
`
}

type clientRun struct {
	code int
	out  string
}

// connectAs runs the helper as user inside libvirtd's mount namespace (where libvirt's automatic
// channel paths exist).
func connectAs(t *testing.T, lv *testenv.Libvirtd, helper, user, path string) clientRun {
	t.Helper()
	cmd := lv.NsenterCmd("setpriv", "--reuid="+user, "--regid="+user, "--init-groups", "--", helper)
	cmd.Env = append(os.Environ(), connectHelperEnv+"="+path)
	out, err := cmd.CombinedOutput()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run helper: %v: %s", err, out)
	}
	return clientRun{code, strings.TrimSpace(string(out))}
}

func copyExecutable(t *testing.T, dst string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

func liveChannelPath(t *testing.T, ctx context.Context, src *libvirt.Source, name string) string {
	t.Helper()
	d, err := src.Domain(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	ch, ok := d.Channel(snapshot.ChannelKvmnet)
	if !ok || ch.Path == "" {
		t.Fatalf("domain %s (%s) has no kvmnet channel path: %+v", name, d.State, d.Channels)
	}
	return ch.Path
}

// TestChannelSocketExposureStockQEMU is issue 10's security test: a private libvirtd with Debian's
// stock qemu.conf semantics (QEMU as libvirt-qemu, group kvm), a domain with a kvmnet channel at
// libvirt's automatic path. Before: group kvm can connect, and an unprivileged member really does.
// After FixExposed and a restart of the domain: nobody but root (and QEMU itself) can, and the same
// client gets EACCES. Then enable-channel on another domain adds exactly the channel, idempotently.
func TestChannelSocketExposureStockQEMU(t *testing.T) {
	testenv.Require(t, "ip", "unshare", "nsenter", "mount", "libvirtd", "virtlogd", "virsh", "qemu-system-x86_64",
		"setpriv", "useradd", "groupadd", "usermod", "getent", "ls")
	ensureTestUser(t)
	ns := testenv.NewNetns(t, "pk")
	lv := testenv.StartLibvirtd(t, ns, testenv.LibvirtdOptions{QEMU: testenv.QEMUStock})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// Short, world-traversable base: socket paths are limited to 108 bytes, and QEMU (libvirt-qemu)
	// must reach the channel directory inside it.
	base, err := os.MkdirTemp("", "kvmt-pk")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	helper := filepath.Join(base, "connect-helper")
	copyExecutable(t, helper)
	chanDir := filepath.Join(base, "channels")
	tmpfiles := filepath.Join(base, "tmpfiles.d", "kvmnet.conf")
	qemuConf := filepath.Join(lv.EtcDir, "qemu.conf")

	src, err := libvirt.Open(ctx, lv.URI, os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = src.Close() }()
	doms := libvirtdomains.Adapter{Src: src}

	acc, err := sockaccess.ReadAccounts("/etc")
	if err != nil {
		t.Fatal(err)
	}
	qemu, err := sockaccess.QEMUUser(sockaccess.QEMUSources{QEMUConf: qemuConf, Accounts: acc})
	if err != nil {
		t.Fatal(err)
	}
	if qemu.User != "libvirt-qemu" || qemu.Group != "kvm" || qemu.Source != "qemu.conf" {
		t.Fatalf("QEMU identity = %+v, want libvirt-qemu:kvm from qemu.conf", qemu)
	}
	in := sockaccess.Inspector{Root: fmt.Sprintf("/proc/%d/root", lv.HolderPID()), Trusted: []string{qemu.User}}

	const vm = "pksec"
	xmlPath := filepath.Join(base, vm+".xml")
	auto := "    <channel type='unix'>\n      <target type='virtio' name='org.kvmnet.agent.0'/>\n    </channel>\n"
	if err := os.WriteFile(xmlPath, []byte(minimalDomain(vm, auto)), 0o644); err != nil {
		t.Fatal(err)
	}
	lv.MustVirsh("define", xmlPath)
	lv.MustVirsh("start", vm)

	before := liveChannelPath(t, ctx, src, vm)
	if !strings.HasPrefix(before, "/var/lib/libvirt/qemu/channel/target/") {
		t.Fatalf("channel path %s is not libvirt's automatic one", before)
	}
	lsBefore := lv.MustNsenter("ls", "-l", before)
	lsDirBefore := lv.MustNsenter("ls", "-ld", filepath.Dir(before))
	accBefore, err := in.Inspect(before)
	if err != nil {
		t.Fatal(err)
	}
	jsBefore, _ := json.MarshalIndent(accBefore, "", "  ")
	t.Logf("BEFORE\n%s%s%s", lsBefore, lsDirBefore, jsBefore)
	if !accBefore.Exposed() || accBefore.Everyone {
		t.Fatalf("automatic path not evaluated as exposed to a group: %s", jsBefore)
	}
	members, ok := accBefore.Groups["kvm"]
	if !ok || !contains(members, testUser) {
		t.Fatalf("finding does not name group kvm with %s: %s (who: %s)", testUser, jsBefore, sockaccess.Who(accBefore))
	}
	if accBefore.Mode != "srwxrwxr-x" || accBefore.Owner != "libvirt-qemu" || accBefore.Group != "kvm" {
		t.Fatalf("socket is %s %s %s, lab notes measured srwxrwxr-x libvirt-qemu kvm", accBefore.Mode, accBefore.Owner, accBefore.Group)
	}
	if r := connectAs(t, lv, helper, testUser, before); r.code != 0 {
		t.Fatalf("%s could not connect to the exposed socket (exit %d: %s): the evaluation says it can", testUser, r.code, r.out)
	}

	// The fix: move the channel into the 0700 directory owned by QEMU's user.
	prep := channel.LocalPreparer(channel.LocalOptions{QEMUConf: qemuConf, Tmpfiles: tmpfiles})
	res, err := channel.FixExposed(ctx, doms, []string{vm}, channel.FixOptions{Dir: chanDir, Yes: true, Prepare: prep})
	if err != nil {
		t.Fatal(err)
	}
	wantPath := filepath.Join(chanDir, vm+".agent.0")
	if len(res) != 1 || !res[0].Applied || res[0].Live != channel.LiveNextBoot || res[0].Path != wantPath {
		t.Fatalf("fix result: %+v", res)
	}
	t.Logf("FIX DIFF\n%s\n%s", res[0].Diff, res[0].Message)
	if res[0].Dir == nil || res[0].Dir.Owner != "libvirt-qemu" {
		t.Fatalf("directory not prepared: %+v", res[0].Dir)
	}
	tf, err := os.ReadFile(tmpfiles)
	if err != nil || !strings.Contains(string(tf), "d "+chanDir+" 0700 libvirt-qemu kvm -") {
		t.Fatalf("tmpfiles.d entry: %v\n%s", err, tf)
	}
	// Still the old socket until the domain is restarted: a guest reboot would not do.
	if got := liveChannelPath(t, ctx, src, vm); got != before {
		t.Fatalf("live path changed without a restart: %s", got)
	}
	lv.MustVirsh("destroy", vm)
	lv.MustVirsh("start", vm)
	after := liveChannelPath(t, ctx, src, vm)
	if after != wantPath {
		t.Fatalf("after restart the channel is at %s, want %s", after, wantPath)
	}
	lsAfter := lv.MustNsenter("ls", "-l", after)
	lsDirAfter := lv.MustNsenter("ls", "-ld", chanDir)
	accAfter, err := in.Inspect(after)
	if err != nil {
		t.Fatal(err)
	}
	jsAfter, _ := json.MarshalIndent(accAfter, "", "  ")
	t.Logf("AFTER\n%s%s%s", lsAfter, lsDirAfter, jsAfter)
	if accAfter.Exposed() || sockaccess.Who(accAfter) != "root only" {
		t.Fatalf("still exposed after the fix: %s", jsAfter)
	}
	r := connectAs(t, lv, helper, testUser, after)
	if r.code != 13 || !strings.Contains(r.out, "permission denied") {
		t.Fatalf("%s after the fix: exit %d (%s), want EACCES", testUser, r.code, r.out)
	}
	// Root still gets in (the controller runs as root).
	if code := connectHelperAsRoot(t, lv, helper, after); code != 0 {
		t.Fatalf("root cannot connect to the moved socket: exit %d", code)
	}
	// The collector's fill finds the same.
	snapDoms := []snapshot.Domain{{Name: vm, State: "running",
		Channels: []snapshot.Channel{{Name: snapshot.ChannelKvmnet, Type: "unix", Path: after}}}}
	if err := in.FillChannelAccess(snapDoms); err != nil || snapDoms[0].ChannelAccess == nil || snapDoms[0].ChannelAccess.Exposed() {
		t.Fatalf("FillChannelAccess: %v %+v", err, snapDoms[0].ChannelAccess)
	}

	// enable-channel on the fixed domain: nothing to do.
	again, err := channel.Enable(ctx, doms, vm, channel.EnableOptions{Dir: chanDir, Prepare: prep})
	if err != nil || again.Applied || again.Live != channel.LiveUnchanged {
		t.Fatalf("enable-channel on the fixed domain: %+v %v", again, err)
	}

	t.Run("enable-channel adds exactly the channel, idempotently", func(t *testing.T) {
		const vm2 = "pkenable"
		x := filepath.Join(base, vm2+".xml")
		if err := os.WriteFile(x, []byte(minimalDomain(vm2, "")), 0o644); err != nil {
			t.Fatal(err)
		}
		lv.MustVirsh("define", x)
		oldXML := lv.MustVirsh("dumpxml", "--inactive", vm2)
		res, err := channel.Enable(ctx, doms, vm2, channel.EnableOptions{Dir: chanDir, Prepare: prep})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Applied || res.Live != channel.LiveNotRunning || len(res.Changes) != 1 || res.Changes[0].Kind != "add-channel" {
			t.Fatalf("enable: %+v", res)
		}
		t.Logf("ENABLE DIFF\n%s\n%s", res.Diff, res.Message)
		newXML := lv.MustVirsh("dumpxml", "--inactive", vm2)
		if n := strings.Count(newXML, "name='org.kvmnet.agent.0'"); n != 1 {
			t.Fatalf("%d kvmnet channels after enable:\n%s", n, newXML)
		}
		if !strings.Contains(newXML, "path='"+filepath.Join(chanDir, vm2+".agent.0")+"'") {
			t.Fatalf("channel path missing:\n%s", newXML)
		}
		// Everything else libvirt had is still there; libvirt may add the virtio-serial controller and
		// an <address> for the new channel.
		for _, l := range strings.Split(strings.TrimSpace(oldXML), "\n") {
			if !strings.Contains(newXML, l) {
				t.Fatalf("line lost by enable-channel: %q\n%s", l, channel.Diff(oldXML, newXML, "old", "new"))
			}
		}
		again, err := channel.Enable(ctx, doms, vm2, channel.EnableOptions{Dir: chanDir, Prepare: prep})
		if err != nil || again.Applied || again.Diff != "" {
			t.Fatalf("second enable changed things: %+v %v", again, err)
		}
		if got := lv.MustVirsh("dumpxml", "--inactive", vm2); got != newXML {
			t.Fatalf("second enable changed the XML:\n%s", channel.Diff(newXML, got, "1", "2"))
		}
		// Started, QEMU creates the socket in the private directory: not exposed.
		lv.MustVirsh("start", vm2)
		p := liveChannelPath(t, ctx, src, vm2)
		a, err := in.Inspect(p)
		if err != nil || a.Exposed() {
			t.Fatalf("new channel %s: %+v %v", p, a, err)
		}
	})

	// libvirt 9.0 hot-plugs a channel only into a domain that already has a virtio-serial controller.
	for _, tc := range []struct {
		name, vm, devices, want string
	}{
		{"running domain with a virtio-serial controller: hot-plugged", "pkhot",
			"    <controller type='virtio-serial' index='0'/>\n", channel.LiveHotplugged},
		{"running domain without one: next boot", "pkcold", "", channel.LiveNextBoot},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := filepath.Join(base, tc.vm+".xml")
			if err := os.WriteFile(x, []byte(minimalDomain(tc.vm, tc.devices)), 0o644); err != nil {
				t.Fatal(err)
			}
			lv.MustVirsh("define", x)
			lv.MustVirsh("start", tc.vm)
			res, err := channel.Enable(ctx, doms, tc.vm, channel.EnableOptions{Dir: chanDir, Prepare: prep})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("live=%s evidence=%s\n%s", res.Live, res.Evidence, res.Message)
			if res.Live != tc.want || !res.Applied {
				t.Fatalf("live outcome %q, want %q", res.Live, tc.want)
			}
			live := lv.MustVirsh("dumpxml", tc.vm)
			hasLive := strings.Contains(live, "name='org.kvmnet.agent.0'")
			if hasLive != (tc.want == channel.LiveHotplugged) {
				t.Fatalf("live XML has the channel: %v, outcome %s", hasLive, res.Live)
			}
			if hasLive {
				p := liveChannelPath(t, ctx, src, tc.vm)
				if a, err := in.Inspect(p); err != nil || a.Exposed() {
					t.Fatalf("hot-plugged socket %s: %+v %v", p, a, err)
				}
				if r := connectAs(t, lv, helper, testUser, p); r.code != 13 {
					t.Fatalf("%s on the hot-plugged socket: exit %d (%s), want EACCES", testUser, r.code, r.out)
				}
			} else if !strings.Contains(res.Message, "shut down and started again") {
				t.Fatalf("message does not say when it takes effect: %q", res.Message)
			}
			if !strings.Contains(lv.MustVirsh("dumpxml", "--inactive", tc.vm), "name='org.kvmnet.agent.0'") {
				t.Fatal("persistent XML lacks the channel")
			}
		})
	}
}

func connectHelperAsRoot(t *testing.T, lv *testenv.Libvirtd, helper, path string) int {
	t.Helper()
	cmd := lv.NsenterCmd(helper)
	cmd.Env = append(os.Environ(), connectHelperEnv+"="+path)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		t.Logf("root helper: %s", out)
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("run helper as root: %v: %s", err, out)
	}
	return 0
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
