package sockaccess

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvmnet/kvmnet/controller/snapshot"
	"github.com/kvmnet/kvmnet/scripts/lab/testenv"
)

// fakeRoot builds a directory tree standing for "/" with a real listening unix socket, owned the way
// the case says (needs root for chown), plus an accounts dir.
func fakeRoot(t *testing.T) (root, etc string) {
	t.Helper()
	testenv.Require(t)
	// Short: unix socket paths are limited to 108 bytes and t.TempDir() names are long.
	root, err := os.MkdirTemp("", "pk")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(root) })
	etc = t.TempDir()
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(etc, "passwd"), []byte(testPasswd), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(etc, "group"), []byte(testGroup), 0o644); err != nil {
		t.Fatal(err)
	}
	return root, etc
}

func mkdirOwned(t *testing.T, p string, uid, gid int, perm os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p, uid, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, perm); err != nil {
		t.Fatal(err)
	}
}

func listen(t *testing.T, p string, uid, gid int, perm os.FileMode) {
	t.Helper()
	l, err := net.Listen("unix", p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	if err := os.Chown(p, uid, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, perm); err != nil {
		t.Fatal(err)
	}
}

func TestInspectRealFilesystem(t *testing.T) {
	root, etc := fakeRoot(t)
	mkdirOwned(t, filepath.Join(root, "var/lib/libvirt/qemu/channel/target/domain-1-vm"), uQEMU, gKVM, 0o750)
	mkdirOwned(t, filepath.Join(root, "var/lib/kvmnet/channels"), uQEMU, gQEMU, 0o700)
	listen(t, filepath.Join(root, "var/lib/libvirt/qemu/channel/target/domain-1-vm/org.kvmnet.agent.0"), uQEMU, gKVM, 0o775)
	listen(t, filepath.Join(root, "var/lib/kvmnet/channels/vm.agent.0"), uQEMU, gKVM, 0o775)
	// A symlinked directory: the traversal goes through the target's permissions.
	if err := os.Symlink("/var/lib/libvirt/qemu/channel/target/domain-1-vm", filepath.Join(root, "var/lib/link")); err != nil {
		t.Fatal(err)
	}
	in := Inspector{Root: root, AccountsDir: etc, Trusted: []string{"libvirt-qemu"}}

	cases := []struct {
		name    string
		path    string
		who     string
		exposed bool
		errText string
	}{
		{"automatic path", "/var/lib/libvirt/qemu/channel/target/domain-1-vm/org.kvmnet.agent.0",
			"group kvm: alice, bob, dave, eve", true, ""},
		{"kvmnet channel dir", "/var/lib/kvmnet/channels/vm.agent.0", "root only", false, ""},
		{"through a symlink", "/var/lib/link/org.kvmnet.agent.0", "group kvm: alice, bob, dave, eve", true, ""},
		{"missing socket", "/var/lib/kvmnet/channels/none.agent.0", "", false, "does not exist"},
		{"relative path", "var/lib/x", "", false, "not absolute"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, err := in.Inspect(tc.path)
			if tc.errText != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errText) {
					t.Fatalf("error = %v, want %q", err, tc.errText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if Who(a) != tc.who || a.Exposed() != tc.exposed {
				t.Fatalf("Who = %q exposed=%v, want %q %v; evidence %s", Who(a), a.Exposed(), tc.who, tc.exposed, a.Evidence)
			}
			if a.Mode != "srwxrwxr-x" || a.Owner != "libvirt-qemu" || a.Group != "kvm" {
				t.Fatalf("socket seen as %s %s %s", a.Mode, a.Owner, a.Group)
			}
			if !strings.Contains(a.Evidence, "seen_through="+root) || strings.Contains(a.Path, root) {
				t.Fatalf("root prefix handling: path=%s evidence=%s", a.Path, a.Evidence)
			}
		})
	}
}

func TestFillChannelAccess(t *testing.T) {
	root, etc := fakeRoot(t)
	mkdirOwned(t, filepath.Join(root, "run/ch"), 0, gKVM, 0o750)
	listen(t, filepath.Join(root, "run/ch/a.sock"), 0, gKVM, 0o770)
	doms := []snapshot.Domain{
		{Name: "a", State: "running", Channels: []snapshot.Channel{{Name: snapshot.ChannelKvmnet, Type: "unix", Path: "/run/ch/a.sock"}}},
		{Name: "off", State: "shut off", Channels: []snapshot.Channel{{Name: snapshot.ChannelKvmnet, Type: "unix", Path: "/run/ch/off.sock"}}},
		{Name: "gone", State: "running", Channels: []snapshot.Channel{{Name: snapshot.ChannelKvmnet, Type: "unix", Path: "/run/ch/gone.sock"}}},
		{Name: "qga-only", State: "running", Channels: []snapshot.Channel{{Name: snapshot.ChannelQemuGA, Type: "unix", Path: "/run/ch/a.sock"}}},
	}
	err := Inspector{Root: root, AccountsDir: etc}.FillChannelAccess(doms)
	if err == nil || !strings.Contains(err.Error(), "domain gone") {
		t.Fatalf("error = %v, want one naming domain gone", err)
	}
	if doms[0].ChannelAccess == nil || Who(*doms[0].ChannelAccess) != "group kvm: alice, bob, dave, eve, libvirt-qemu" {
		t.Fatalf("a: %+v", doms[0].ChannelAccess)
	}
	for _, d := range doms[1:] {
		if d.ChannelAccess != nil {
			t.Fatalf("%s: ChannelAccess set: %+v", d.Name, d.ChannelAccess)
		}
	}
}
