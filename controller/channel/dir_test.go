package channel

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/kvmnet/kvmnet/controller/sockaccess"
	"github.com/kvmnet/kvmnet/scripts/lab/testenv"
)

var testQEMU = sockaccess.QEMUIdentity{User: "libvirt-qemu", Group: "kvm", UID: 64055, GID: 107, Source: "qemu.conf"}

var testAcc = sockaccess.Accounts{
	Users:  []sockaccess.User{{Name: "root"}, {Name: "libvirt-qemu", UID: 64055, GID: 108}},
	Groups: []sockaccess.Group{{Name: "root"}, {Name: "kvm", GID: 107, Members: []string{"libvirt-qemu"}}},
}

// openBase is a temporary directory every user can traverse (t.TempDir's parent is 0700).
func openBase(t *testing.T) string {
	t.Helper()
	testenv.Require(t)
	base, err := os.MkdirTemp("", "pkdir")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	return base
}

func ownerMode(t *testing.T, p string) (uint32, uint32, os.FileMode) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return st.Uid, st.Gid, fi.Mode()
}

func TestPrepareDir(t *testing.T) {
	base := openBase(t)
	cases := []struct {
		name    string
		setup   func(t *testing.T, dir, tmpfiles string)
		actions string
		errText string
	}{
		{"missing: created", func(t *testing.T, dir, tf string) {}, "created,chown,tmpfiles", ""},
		{"root-owned 0755: chown and chmod", func(t *testing.T, dir, tf string) {
			must(t, os.MkdirAll(dir, 0o755))
		}, "chown,chmod,tmpfiles", ""},
		{"already right: nothing", func(t *testing.T, dir, tf string) {
			must(t, os.MkdirAll(filepath.Dir(dir), 0o755))
			must(t, os.Mkdir(dir, 0o700))
			must(t, os.Chown(dir, 64055, 107))
			must(t, os.MkdirAll(filepath.Dir(tf), 0o755))
			must(t, os.WriteFile(tf, []byte(TmpfilesContent(dir, testQEMU)), 0o644))
		}, "", ""},
		{"symlink refused", func(t *testing.T, dir, tf string) {
			must(t, os.MkdirAll(filepath.Dir(dir), 0o755))
			must(t, os.Symlink("/etc", dir))
		}, "", "is a symlink"},
		{"foreign tmpfiles file kept", func(t *testing.T, dir, tf string) {
			must(t, os.MkdirAll(filepath.Dir(tf), 0o755))
			must(t, os.WriteFile(tf, []byte("d /x 0700 root root -\n"), 0o644))
		}, "", "was not written by kvmnet"},
		{"parent QEMU cannot traverse", func(t *testing.T, dir, tf string) {
			must(t, os.MkdirAll(filepath.Dir(dir), 0o700))
			must(t, os.Chmod(filepath.Dir(dir), 0o700))
		}, "", "cannot reach it"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := filepath.Join(base, string(rune('a'+i)))
			dir := filepath.Join(root, "kvmnet", "channels")
			tf := filepath.Join(root, "tmpfiles.d", "kvmnet.conf")
			tc.setup(t, dir, tf)
			res, err := PrepareDir(DirOptions{Dir: dir, QEMU: testQEMU, Accounts: testAcc, Tmpfiles: tf})
			if tc.errText != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errText) {
					t.Fatalf("error = %v, want %q", err, tc.errText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(res.Actions, ","); got != tc.actions {
				t.Fatalf("actions = %q, want %q (%s)", got, tc.actions, res.Evidence)
			}
			uid, gid, mode := ownerMode(t, dir)
			if uid != 64055 || gid != 107 || mode != os.ModeDir|0o700 {
				t.Fatalf("dir is %d:%d %v", uid, gid, mode)
			}
			b, err := os.ReadFile(tf)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), "d "+dir+" 0700 libvirt-qemu kvm -\n") || !strings.HasPrefix(string(b), ManagedHeader) {
				t.Fatalf("tmpfiles content:\n%s", b)
			}
			// Idempotent.
			again, err := PrepareDir(DirOptions{Dir: dir, QEMU: testQEMU, Accounts: testAcc, Tmpfiles: tf})
			if err != nil || len(again.Actions) != 0 {
				t.Fatalf("second run: %+v %v", again, err)
			}
		})
	}
}

func TestTmpfilesContentNumericIDs(t *testing.T) {
	got := TmpfilesContent("/d", sockaccess.QEMUIdentity{User: "uid:4242", Group: "gid:77", UID: 4242, GID: 77, Source: "process"})
	if !strings.Contains(got, "d /d 0700 4242 77 -\n") {
		t.Fatal(got)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
