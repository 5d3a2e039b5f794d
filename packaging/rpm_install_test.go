package packaging

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/kvmnet/kvmnet/scripts/lab/testenv"
)

// rpmDB is the rpm database inside a test root, named explicitly: Debian's rpm defaults to ~/.rpmdb.
const rpmDB = "/var/lib/rpm"

// rpmRoot copies the Debian essential root into t.TempDir and creates an empty rpm database in it.
//
// Why not --justdb/--noscripts: the scriptlets need no running systemd (they look for systemctl and
// /run/systemd/system), only /bin/sh, find, grep and rmdir, which the essential root has; so rpm runs
// them for real, chrooted there, and systemctl, udevadm and systemd-tmpfiles are stubs that log their
// arguments (stubInvokers), which the tests assert.
func rpmRoot(t *testing.T) string {
	t.Helper()
	testenv.Require(t, "rpm", "mmdebstrap", "cp", "chroot")
	ensureEssentialCache(t)
	root := filepath.Join(t.TempDir(), "root")
	run(t, "cp", "-a", essentialCache, root)
	stubInvokers(t, root, true)
	for _, dir := range sharedDirs {
		must(t, os.MkdirAll(filepath.Join(root, dir), 0o755))
	}
	rpmIn(t, root, "--initdb")
	return root
}

// sharedDirs are directories kvmnet's rpms install into but must not own: on Fedora/RHEL the
// filesystem, systemd, zsh and fish packages own them, so they exist before kvmnet is installed and
// stay after it is erased. The Debian root lacks them; rpmRoot creates them before the test's snapshot.
var sharedDirs = []string{"usr/lib/tmpfiles.d", "usr/share/zsh/site-functions", "usr/share/fish/vendor_completions.d"}

// rpmIn runs rpm on the database and files of root.
func rpmIn(t *testing.T, root string, args ...string) string {
	t.Helper()
	return run(t, append([]string{"rpm", "--root", root, "--dbpath", rpmDB}, args...)...)
}

func clearInvoked(t *testing.T, root string) {
	t.Helper()
	if err := os.Remove(filepath.Join(root, "kvmnet-invoked.log")); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
}

// checkInstalled asserts each path exists in root as a root-owned regular file (or directory, when the
// mode has fs.ModeDir) with exactly that mode.
func checkInstalled(t *testing.T, root string, want map[string]fs.FileMode) {
	t.Helper()
	for p, mode := range want {
		fi, err := os.Lstat(filepath.Join(root, p))
		if err != nil {
			t.Errorf("not installed: /%s: %v", p, err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode() != mode || st.Uid != 0 || st.Gid != 0 {
			t.Errorf("/%s: %v %d:%d, want %v 0:0", p, fi.Mode(), st.Uid, st.Gid, mode)
		}
	}
}

// nfpmBin finds the nfpm build.sh used (on PATH, or go-installed into GOPATH/bin by build.sh).
func nfpmBin(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("nfpm"); err == nil {
		return p
	}
	p := filepath.Join(strings.TrimSpace(run(t, "go", "env", "GOPATH")), "bin", "nfpm")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("nfpm is neither on PATH nor %s: packaging/build.sh installs it "+
			"(go install github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2)", p)
	}
	return p
}

// agentRPMNext builds the next version of the agent's rpm for the build machine (version ver + ".2",
// the same binary, scripts and nfpm config) whose default /etc/kvmnet/agent.yaml is conf.
func agentRPMNext(t *testing.T, dist, ver string, conf []byte) (rpm, version string) {
	t.Helper()
	dist, err := filepath.Abs(dist)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "agent.yaml"), conf, 0o644))
	cfg, err := os.ReadFile("nfpm/kvmnet-agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const src = "src: packaging/agent/agent.yaml\n"
	if n := strings.Count(string(cfg), src); n != 1 {
		t.Fatalf("nfpm/kvmnet-agent.yaml has %d lines %q, want 1", n, src)
	}
	cfgPath := filepath.Join(dir, "nfpm.yaml")
	must(t, os.WriteFile(cfgPath, []byte(strings.Replace(string(cfg), src, "src: "+filepath.Join(dir, "agent.yaml")+"\n", 1)), 0o644))
	version = ver + ".2"
	rpm = filepath.Join(dir, "kvmnet-agent-"+version+"."+rpmArch(runtime.GOARCH)+".rpm")
	cmd := exec.Command(nfpmBin(t), "package", "--config", cfgPath, "--packager", "rpm", "--target", rpm)
	cmd.Dir = ".." // the config's other paths are relative to the repository root, as in build.sh
	cmd.Env = append(os.Environ(), "PKG_ARCH="+runtime.GOARCH, "PKG_VERSION="+version,
		"BIN_DIR="+filepath.Join(dist, "build", "agent-"+runtime.GOARCH))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nfpm (next agent rpm): %v\n%s", err, out)
	}
	return rpm, version
}

// TestAgentRPMInstallUpgradeErase installs the agent's rpm into a throwaway root with
// `rpm --root` (scriptlets run chrooted, no systemd running), upgrades it to a version whose default
// configuration changed, and erases it. It proves: files and modes; %post enables the unit and starts
// nothing without systemd; %config(noreplace): an edited agent.yaml is kept on upgrade and the new
// default lands as agent.yaml.rpmnew, an unedited one is replaced silently; an upgrade under systemd
// restarts the agent exactly once; erase disables the unit, saves an edited configuration as
// agent.yaml.rpmsave and leaves nothing else but the backups (README: "Remove and purge").
func TestAgentRPMInstallUpgradeErase(t *testing.T) {
	d, ver := dist(t)
	rpm1 := filepath.Join(d, "kvmnet-agent-"+ver+"."+rpmArch(runtime.GOARCH)+".rpm")
	def1, err := os.ReadFile("agent/agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	def2 := append(bytes.Clone(def1), "# (a default changed in the next version)\n"...)
	rpm2, ver2 := agentRPMNext(t, d, ver, def2)
	edited := bytes.Replace(def1, []byte("\nallow_apply: true\n"), []byte("\nallow_apply: false\n"), 1)
	if bytes.Equal(edited, def1) {
		t.Fatal("agent/agent.yaml has no line \"allow_apply: true\" for the test to edit")
	}

	for _, tc := range []struct {
		name    string
		edit    bool // the user edits /etc/kvmnet/agent.yaml before the upgrade
		systemd bool // /run/systemd/system exists during upgrade and erase
	}{
		{name: "edited config, no systemd", edit: true},
		{name: "default config, systemd running", systemd: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := rpmRoot(t)
			before := tree(t, root)

			// No --nodeps: the static agent requires nothing.
			t.Logf("rpm -i:\n%s", rpmIn(t, root, "-i", rpm1))
			checkInstalled(t, root, map[string]fs.FileMode{
				"usr/sbin/kvmnet-agent":                       0o755,
				"usr/lib/systemd/system/kvmnet-agent.service": 0o644,
				"usr/lib/udev/rules.d/60-kvmnet-agent.rules":  0o644,
				"etc/kvmnet":            fs.ModeDir | 0o755,
				"etc/kvmnet/agent.yaml": 0o644,
				"usr/share/doc/kvmnet-agent/README.packaging.md": 0o644,
				"usr/share/doc/kvmnet-agent":                     fs.ModeDir | 0o755,
			})
			if log := invoked(root); log != "systemctl --no-reload enable kvmnet-agent.service\n" {
				t.Errorf("%%post in a root without systemd ran %q, want only the enable", log)
			}
			if v := rpmIn(t, root, "-q", "--qf", "%{VERSION}", "kvmnet-agent"); v != ver {
				t.Errorf("installed version %q, want %q", v, ver)
			}
			// rpm -V: every file as packaged (digest, mode, owner).
			if out, err := exec.Command("rpm", "--root", root, "--dbpath", rpmDB, "-V", "kvmnet-agent").CombinedOutput(); err != nil || len(out) != 0 {
				t.Errorf("rpm -V after install: %v\n%s", err, out)
			}
			clearInvoked(t, root)

			conf := filepath.Join(root, "etc/kvmnet/agent.yaml")
			if tc.edit {
				must(t, os.WriteFile(conf, edited, 0o644))
				out, _ := exec.Command("rpm", "--root", root, "--dbpath", rpmDB, "-V", "kvmnet-agent").CombinedOutput()
				if f := strings.Fields(string(out)); len(f) != 3 || f[1] != "c" || f[2] != "/etc/kvmnet/agent.yaml" || !strings.Contains(f[0], "5") {
					t.Errorf("rpm -V after the edit = %q, want only the changed config file (5 c /etc/kvmnet/agent.yaml)", out)
				}
			}
			if tc.systemd {
				must(t, os.MkdirAll(filepath.Join(root, "run/systemd/system"), 0o755))
			}

			out := rpmIn(t, root, "-U", rpm2)
			t.Logf("rpm -U:\n%s", out)
			if v := rpmIn(t, root, "-q", "--qf", "%{VERSION}", "kvmnet-agent"); v != ver2 {
				t.Errorf("after upgrade version %q, want %q", v, ver2)
			}
			got, err := os.ReadFile(conf)
			if err != nil {
				t.Fatal(err)
			}
			rpmnew, newErr := os.ReadFile(conf + ".rpmnew")
			if tc.edit {
				if !bytes.Equal(got, edited) {
					t.Errorf("upgrade replaced the user's agent.yaml:\n%s", got)
				}
				if newErr != nil || !bytes.Equal(rpmnew, def2) {
					t.Errorf("new default not installed as agent.yaml.rpmnew: %v\n%s", newErr, rpmnew)
				}
				if !strings.Contains(out, "/etc/kvmnet/agent.yaml created as /etc/kvmnet/agent.yaml.rpmnew") {
					t.Errorf("rpm -U did not say where the new default went:\n%s", out)
				}
			} else {
				if !bytes.Equal(got, def2) {
					t.Errorf("unedited agent.yaml not replaced by the new default:\n%s", got)
				}
				if newErr == nil {
					t.Error("agent.yaml.rpmnew written although agent.yaml was not edited")
				}
			}
			log := invoked(root)
			if tc.systemd {
				for _, want := range []string{"systemctl daemon-reload\n", "udevadm control --reload-rules\n"} {
					if !strings.Contains(log, want) {
						t.Errorf("upgrade under systemd did not run %q: %q", want, log)
					}
				}
				if n := strings.Count(log, "systemctl try-restart kvmnet-agent.service\n"); n != 1 {
					t.Errorf("upgrade under systemd restarted the agent %d times, want 1: %q", n, log)
				}
				if strings.Contains(log, " enable ") || strings.Contains(log, "systemctl start ") {
					t.Errorf("upgrade enabled or started the unit (a user may have disabled it): %q", log)
				}
			} else if log != "" {
				t.Errorf("upgrade without systemd ran %q, want nothing", log)
			}
			clearInvoked(t, root)

			// What the agent would have written: a backup of a replaced file and its state.
			backup := filepath.Join(root, "var/lib/kvmnet/backup/etc/sysctl.d/99-old.conf")
			must(t, os.MkdirAll(filepath.Dir(backup), 0o700))
			must(t, os.WriteFile(backup, []byte("net.ipv6.conf.all.disable_ipv6 = 0\n"), 0o644))
			must(t, os.WriteFile(filepath.Join(root, "var/lib/kvmnet/state.json"), []byte("{}\n"), 0o644))

			out = rpmIn(t, root, "-e", "kvmnet-agent")
			t.Logf("rpm -e:\n%s", out)
			if !strings.Contains(out, "kept /var/lib/kvmnet/backup") {
				t.Errorf("erase does not say it kept the backups:\n%s", out)
			}
			log = invoked(root)
			if !strings.HasPrefix(log, "systemctl --no-reload disable kvmnet-agent.service\n") {
				t.Errorf("erase did not disable the unit first: %q", log)
			}
			if stopped := strings.Contains(log, "systemctl stop kvmnet-agent.service\n"); stopped != tc.systemd {
				t.Errorf("erase stopped the agent: %v, want %v (systemd running): %q", stopped, tc.systemd, log)
			}
			if out, err := exec.Command("rpm", "--root", root, "--dbpath", rpmDB, "-q", "kvmnet-agent").CombinedOutput(); err == nil {
				t.Errorf("still installed after erase: %s", out)
			}
			must(t, os.RemoveAll(filepath.Join(root, "run/systemd")))

			added, removed := diffTrees(before, tree(t, root))
			wantAdded := []string{"/var/lib/kvmnet/", "/var/lib/kvmnet/backup/", "/var/lib/kvmnet/backup/etc/",
				"/var/lib/kvmnet/backup/etc/sysctl.d/", "/var/lib/kvmnet/backup/etc/sysctl.d/99-old.conf"}
			if tc.edit {
				wantAdded = append([]string{"/etc/kvmnet/", "/etc/kvmnet/agent.yaml.rpmnew", "/etc/kvmnet/agent.yaml.rpmsave"}, wantAdded...)
				if b, err := os.ReadFile(conf + ".rpmsave"); err != nil || !bytes.Equal(b, edited) {
					t.Errorf("agent.yaml.rpmsave is not the user's edit: %v\n%s", err, b)
				}
			}
			if strings.Join(added, " ") != strings.Join(wantAdded, " ") || len(removed) != 0 {
				t.Errorf("after erase:\n added   %v\n removed %v\nwant added only %v", added, removed, wantAdded)
			}
		})
	}
}

// TestCtlRPMInstallErase installs kvmnetctl's rpm into a throwaway root: %post creates the channel
// directory through systemd-tmpfiles, and erase removes the tmpfiles.d override kvmnetctl wrote and the
// empty channel directory, leaving nothing behind.
func TestCtlRPMInstallErase(t *testing.T) {
	d, ver := dist(t)
	rpm := filepath.Join(d, "kvmnetctl-"+ver+"."+rpmArch(runtime.GOARCH)+".rpm")
	root := rpmRoot(t)
	before := tree(t, root)

	// The requirements are real: rpm refuses the package without them ...
	out, err := exec.Command("rpm", "--root", root, "--dbpath", rpmDB, "-i", "--test", rpm).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "glibc is needed by kvmnetctl") ||
		!strings.Contains(string(out), "libvirt-libs is needed by kvmnetctl") {
		t.Errorf("rpm -i --test into an empty rpm database: %v, want glibc and libvirt-libs named as missing:\n%s", err, out)
	}
	// ... and --nodeps installs it: the root's C library belongs to dpkg, rpm's database is empty.
	rpmIn(t, root, "-i", "--nodeps", rpm)
	if log := invoked(root); log != "systemd-tmpfiles --create kvmnet.conf\n" {
		t.Errorf("%%post ran %q, want the tmpfiles creation only", log)
	}
	checkInstalled(t, root, map[string]fs.FileMode{
		"usr/bin/kvmnetctl":                               0o755,
		"usr/lib/tmpfiles.d/kvmnet.conf":                  0o644,
		"usr/share/man/man1/kvmnetctl.1.gz":               0o644,
		"usr/share/zsh/site-functions/_kvmnetctl":         0o644,
		"usr/share/bash-completion/completions/kvmnetctl": 0o644,
	})
	// What kvmnetctl guests enable-channel writes; erase removes it (it carries the managed header).
	must(t, os.MkdirAll(filepath.Join(root, "etc/tmpfiles.d"), 0o755))
	before["/etc/tmpfiles.d/"] = true
	must(t, os.WriteFile(filepath.Join(root, "etc/tmpfiles.d/kvmnet.conf"),
		[]byte("# managed by kvmnet (kvmnetctl guests enable-channel)\nd /var/lib/kvmnet/channels 0700 libvirt-qemu kvm -\n"), 0o644))
	must(t, os.MkdirAll(filepath.Join(root, "var/lib/kvmnet/channels"), 0o700))

	rpmIn(t, root, "-e", "kvmnetctl")
	if added, removed := diffTrees(before, tree(t, root)); len(added)+len(removed) != 0 {
		t.Errorf("install + erase left %v, removed %v", added, removed)
	}
}
