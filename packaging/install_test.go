package packaging

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/kvmnet/kvmnet/scripts/lab/testenv"
)

// essentialCache is a Debian bookworm root made by `mmdebstrap --variant=essential` (dpkg, perl-base,
// init-system-helpers with deb-systemd-helper; no systemd), built once per machine (~2.5 min) and
// copied for each test (~4 s).
const essentialCache = "/var/cache/kvmnet-test/pk-bookworm-essential"

func debianRoot(t *testing.T) string {
	t.Helper()
	testenv.Require(t, "mmdebstrap", "dpkg", "cp", "chroot")
	ensureEssentialCache(t)
	// Short path: dpkg and the maintainer scripts run chrooted there.
	base, err := os.MkdirTemp("", "kvmnet-pk-root")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(base) })
	root := filepath.Join(base, "root")
	run(t, "cp", "-a", essentialCache, root)
	return root
}

// ensureEssentialCache builds essentialCache when it is missing.
func ensureEssentialCache(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(essentialCache, "var/lib/dpkg/status")); err != nil {
		must(t, os.MkdirAll(filepath.Dir(essentialCache), 0o755))
		partial := essentialCache + ".partial-" + filepath.Base(t.TempDir())
		out, err := exec.Command("mmdebstrap", "--quiet", "--variant=essential", "bookworm", partial,
			"/etc/apt/sources.list.d/debian.sources").CombinedOutput()
		if err != nil {
			_ = os.RemoveAll(partial)
			t.Fatalf("mmdebstrap --variant=essential bookworm (needs the Debian mirror of /etc/apt/sources.list.d/debian.sources): %v\n%s", err, out)
		}
		if err := os.Rename(partial, essentialCache); err != nil {
			_ = os.RemoveAll(partial) // a parallel test won the race
		}
	}
}

// stubInvokers replaces the tools that would start or stop services with scripts that only log their
// arguments to /kvmnet-invoked.log inside the root, so the test sees what a maintainer script tried.
// systemctl is only stubbed when asked: an essential root has none, and deb-systemd-helper behaves
// differently when it exists (it delegates to `systemctl preset`).
func stubInvokers(t *testing.T, root string, withSystemctl bool) {
	t.Helper()
	tools := []string{"usr/bin/deb-systemd-invoke", "usr/bin/udevadm", "usr/bin/systemd-tmpfiles"}
	if withSystemctl {
		tools = append(tools, "usr/bin/systemctl")
	}
	for _, p := range tools {
		must(t, os.WriteFile(filepath.Join(root, p), []byte("#!/bin/sh\necho \"$(basename \"$0\") $*\" >>/kvmnet-invoked.log\n"), 0o755))
	}
}

func invoked(root string) string {
	b, _ := os.ReadFile(filepath.Join(root, "kvmnet-invoked.log"))
	return string(b)
}

// tree lists every path under root (relative, with a / suffix for directories), skipping dpkg's own
// and rpm's bookkeeping and logs, and the test's stubs.
func tree(t *testing.T, root string) map[string]bool {
	t.Helper()
	m := map[string]bool{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(p, root)
		for _, skip := range []string{"/var/lib/dpkg/", "/var/lib/rpm/", "/var/log/", "/kvmnet-invoked.log"} {
			if strings.HasPrefix(rel+"/", skip) || rel == strings.TrimSuffix(skip, "/") {
				if d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
		}
		if d.IsDir() {
			rel += "/"
		}
		m[rel] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func diffTrees(before, after map[string]bool) (added, removed []string) {
	for p := range after {
		if !before[p] {
			added = append(added, p)
		}
	}
	for p := range before {
		if !after[p] {
			removed = append(removed, p)
		}
	}
	sort.Strings(added)
	sort.Strings(removed)
	return added, removed
}

func dpkg(t *testing.T, root string, args ...string) string {
	t.Helper()
	return run(t, append([]string{"dpkg", "--root", root}, args...)...)
}

// TestAgentDebInstallRemovePurge installs the agent .deb into a throwaway Debian root with dpkg --root
// (maintainer scripts run chrooted, no systemd running): the unit gets enabled (symlink), nothing is
// started; with /run/systemd/system present an upgrade restarts it; remove keeps the configuration and
// the state; purge leaves nothing behind but the documented backups.
func TestAgentDebInstallRemovePurge(t *testing.T) {
	d, ver := dist(t)
	deb := filepath.Join(d, "kvmnet-agent_"+ver+"_amd64.deb")
	root := debianRoot(t)
	stubInvokers(t, root, false)
	before := tree(t, root)

	out := dpkg(t, root, "-i", deb)
	t.Logf("dpkg -i:\n%s", out)
	link := filepath.Join(root, "etc/systemd/system/multi-user.target.wants/kvmnet-agent.service")
	// deb-systemd-helper finds the unit through the merged-/usr alias /lib first.
	if target, err := os.Readlink(link); err != nil || (target != "/usr/lib/systemd/system/kvmnet-agent.service" &&
		target != "/lib/systemd/system/kvmnet-agent.service") {
		t.Fatalf("unit not enabled in the chroot: readlink %s = %q, %v", link, target, err)
	}
	if log := invoked(root); log != "" {
		t.Fatalf("postinst without a running systemd invoked: %s", log)
	}
	for _, p := range []string{"usr/sbin/kvmnet-agent", "etc/kvmnet/agent.yaml", "usr/lib/udev/rules.d/60-kvmnet-agent.rules"} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Fatalf("not installed: %s", p)
		}
	}
	if st := run(t, "dpkg", "--root", root, "-s", "kvmnet-agent"); !strings.Contains(st, "Status: install ok installed") {
		t.Fatalf("dpkg -s: %s", st)
	}

	// As if systemd were running: reinstall (an upgrade for postinst) restarts the agent.
	must(t, os.MkdirAll(filepath.Join(root, "run/systemd/system"), 0o755))
	stubInvokers(t, root, true)
	dpkg(t, root, "-i", deb)
	if log := invoked(root); !strings.Contains(log, "deb-systemd-invoke restart kvmnet-agent.service") ||
		!strings.Contains(log, "systemctl --system daemon-reload") {
		t.Fatalf("postinst with systemd running did not restart the agent: %q", log)
	}
	must(t, os.RemoveAll(filepath.Join(root, "run/systemd")))
	must(t, os.Remove(filepath.Join(root, "kvmnet-invoked.log")))
	must(t, os.Remove(filepath.Join(root, "usr/bin/systemctl")))

	// State the agent would have written: a backup and its state file.
	backup := filepath.Join(root, "var/lib/kvmnet/backup/etc/sysctl.d/99-old.conf")
	must(t, os.MkdirAll(filepath.Dir(backup), 0o700))
	must(t, os.WriteFile(backup, []byte("net.ipv6.conf.all.disable_ipv6 = 0\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(root, "var/lib/kvmnet/state.json"), []byte("{}\n"), 0o644))

	dpkg(t, root, "-r", "kvmnet-agent")
	if _, err := os.Stat(filepath.Join(root, "usr/sbin/kvmnet-agent")); err == nil {
		t.Fatal("binary left after remove")
	}
	for _, p := range []string{"etc/kvmnet/agent.yaml", "var/lib/kvmnet/state.json", "var/lib/kvmnet/backup/etc/sysctl.d/99-old.conf"} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Fatalf("remove deleted %s, which it must keep", p)
		}
	}
	if log := invoked(root); log != "" {
		t.Fatalf("remove without systemd invoked: %q", log)
	}

	out = dpkg(t, root, "-P", "kvmnet-agent")
	if !strings.Contains(out, "kept /var/lib/kvmnet/backup") {
		t.Errorf("purge does not say it kept the backups:\n%s", out)
	}
	added, removed := diffTrees(before, tree(t, root))
	wantAdded := []string{"/var/lib/kvmnet/", "/var/lib/kvmnet/backup/", "/var/lib/kvmnet/backup/etc/",
		"/var/lib/kvmnet/backup/etc/sysctl.d/", "/var/lib/kvmnet/backup/etc/sysctl.d/99-old.conf"}
	if strings.Join(added, " ") != strings.Join(wantAdded, " ") || len(removed) != 0 {
		t.Fatalf("after purge:\n added   %v\n removed %v\nwant only the backups added: %v", added, removed, wantAdded)
	}

	// Without backups, purge leaves nothing at all.
	must(t, os.RemoveAll(filepath.Join(root, "var/lib/kvmnet")))
	dpkg(t, root, "-i", deb)
	dpkg(t, root, "-P", "kvmnet-agent")
	if added, removed := diffTrees(before, tree(t, root)); len(added)+len(removed) != 0 {
		t.Fatalf("install + purge left %v, removed %v", added, removed)
	}
}

// TestCtlDebInstallPurge installs kvmnetctl into the same kind of root (its libvirt0 dependency is not
// there: --force-depends) and checks postinst and purge.
func TestCtlDebInstallPurge(t *testing.T) {
	d, ver := dist(t)
	deb := filepath.Join(d, "kvmnetctl_"+ver+"_amd64.deb")
	root := debianRoot(t)
	stubInvokers(t, root, false)
	before := tree(t, root)
	dpkg(t, root, "--force-depends", "-i", deb)
	if log := invoked(root); !strings.Contains(log, "systemd-tmpfiles --create kvmnet.conf") {
		t.Fatalf("postinst did not create the channel directory through tmpfiles: %q", log)
	}
	for _, p := range []string{"usr/bin/kvmnetctl", "usr/lib/tmpfiles.d/kvmnet.conf", "usr/share/man/man1/kvmnetctl.1.gz"} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Fatalf("not installed: %s", p)
		}
	}
	// What kvmnetctl guests enable-channel writes; purge removes it (it carries the managed header).
	// (/etc/tmpfiles.d is not in an essential root: made here, removed with the check below.)
	must(t, os.MkdirAll(filepath.Join(root, "etc/tmpfiles.d"), 0o755))
	before["/etc/tmpfiles.d/"] = true
	must(t, os.WriteFile(filepath.Join(root, "etc/tmpfiles.d/kvmnet.conf"),
		[]byte("# managed by kvmnet (kvmnetctl guests enable-channel)\nd /var/lib/kvmnet/channels 0700 libvirt-qemu kvm -\n"), 0o644))
	must(t, os.MkdirAll(filepath.Join(root, "var/lib/kvmnet/channels"), 0o700))
	dpkg(t, root, "--force-depends", "-P", "kvmnetctl")
	if added, removed := diffTrees(before, tree(t, root)); len(added)+len(removed) != 0 {
		t.Fatalf("install + purge left %v, removed %v", added, removed)
	}
}
