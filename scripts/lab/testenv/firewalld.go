package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Firewalld is a real firewalld running inside a test's namespace, on a private bus, with its
// configuration in a test directory: it never sees the machine's /etc/firewalld, system bus or
// main namespace.
type Firewalld struct {
	// Root is the file system root its configuration lives under: Root/usr/lib/firewalld (the
	// package's defaults, copied) and Root/etc/firewalld (the admin's, written by --permanent).
	Root string
	// Bus is the private bus firewalld serves on.
	Bus *Bus
	// Proc is the running daemon.
	Proc *Proc
	ns   *Netns
}

// StartFirewalld copies Debian's /usr/lib/firewalld and then every file of extraDefaults (paths
// relative to usr/lib/firewalld, e.g. "zones/libvirt.xml" -> its content) into a fresh root, writes
// firewalld.conf, starts `firewalld --nofork --nopid` in ns on bus and waits until it answers
// `firewall-cmd --state` with "running". Files named in remove (relative to usr/lib/firewalld) are
// left out of the copy.
func StartFirewalld(t testing.TB, ns *Netns, bus *Bus, extraDefaults map[string][]byte, remove ...string) *Firewalld {
	t.Helper()
	Require(t, "firewalld", "firewall-cmd", "nft")
	root := t.TempDir()
	def := filepath.Join(root, "usr/lib/firewalld")
	sys := filepath.Join(root, "etc/firewalld")
	if err := os.MkdirAll(filepath.Dir(def), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", "/usr/lib/firewalld", filepath.Dir(def)).CombinedOutput(); err != nil {
		t.Fatalf("copy /usr/lib/firewalld: %v: %s (install-deps installs firewalld)", err, out)
	}
	for name, data := range extraDefaults {
		p := filepath.Join(def, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range remove {
		if err := os.Remove(filepath.Join(def, name)); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"zones", "policies", "services", "ipsets", "icmptypes", "helpers"} {
		if err := os.MkdirAll(filepath.Join(sys, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	conf := "DefaultZone=public\nCleanupOnExit=yes\nLockdown=no\nIPv6_rpfilter=yes\nIndividualCalls=no\nLogDenied=off\nFirewallBackend=nftables\nFlushAllOnReload=yes\n"
	if err := os.WriteFile(filepath.Join(sys, "firewalld.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"DBUS_SYSTEM_BUS_ADDRESS=" + bus.Address}
	p := ns.Start("firewalld", env, "firewalld", "--nofork", "--nopid", "--system-config", sys, "--default-config", def, "--log-target", "console")
	t.Cleanup(p.Stop) // before the bus and the temp dirs go
	fw := &Firewalld{Root: root, Bus: bus, Proc: p, ns: ns}
	err := WaitFor(60*time.Second, 200*time.Millisecond, func() (bool, error) {
		if p.Exited() {
			return false, fmt.Errorf("firewalld exited: %s", p.Output())
		}
		out, err := fw.Cmd("--state")
		return err == nil && strings.TrimSpace(out) == "running", nil
	})
	if err != nil {
		t.Fatalf("firewalld in %s did not come up: %v; output: %s", ns.Name, err, strings.TrimSpace(p.Output()))
	}
	return fw
}

// Cmd runs firewall-cmd against this firewalld (its private bus) and returns its combined output.
func (f *Firewalld) Cmd(args ...string) (string, error) {
	return f.ns.Run(append([]string{"env", "DBUS_SYSTEM_BUS_ADDRESS=" + f.Bus.Address, "firewall-cmd"}, args...)...)
}

// MustCmd is Cmd failing the test on error.
func (f *Firewalld) MustCmd(t testing.TB, args ...string) string {
	t.Helper()
	out, err := f.Cmd(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
