package managedfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func newStore(t *testing.T) (*Store, string) {
	t.Helper()
	root := t.TempDir()
	for _, d := range DefaultAllowed() {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s, err := New(Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	return s, root
}

func writeFile(t *testing.T, path, content string, mode fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWriteNewFileThenIdempotent(t *testing.T) {
	s, root := newStore(t)
	const p = "/etc/sysctl.d/99-kvmnet-disable-ipv6.conf"
	res, err := s.Write(p, []byte("net.ipv6.conf.all.disable_ipv6 = 1\n"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed || res.Old != nil || res.Path != p {
		t.Fatalf("first write: %+v", res)
	}
	got := readFile(t, filepath.Join(root, p))
	if got != Header+"net.ipv6.conf.all.disable_ipv6 = 1\n" {
		t.Fatalf("content = %q", got)
	}
	fi, _ := os.Stat(filepath.Join(root, p))
	if fi.Mode().Perm() != 0o644 {
		t.Fatalf("mode = %v, want 0644", fi.Mode().Perm())
	}
	e, ok, err := s.Entry(p)
	if err != nil || !ok || e.Existed || e.Backup != "" {
		t.Fatalf("entry = %+v ok=%v err=%v", e, ok, err)
	}
	// Writing body that already carries the header is the same content: no change.
	res, err = s.Write(p, []byte(Header+"net.ipv6.conf.all.disable_ipv6 = 1\n"), 0)
	if err != nil || res.Changed {
		t.Fatalf("second write changed=%v err=%v", res.Changed, err)
	}
	managed, err := s.Managed()
	if err != nil || !slices.Equal(managed, []string{p}) {
		t.Fatalf("managed = %v err=%v", managed, err)
	}
	assertNoTempFiles(t, root)
}

func TestWriteExistingBacksUpOnceAndRestore(t *testing.T) {
	s, root := newStore(t)
	const p = "/etc/dnf/dnf.conf"
	orig := "[main]\ngpgcheck=1\n"
	writeFile(t, filepath.Join(root, p), orig, 0o640)

	if _, err := s.Write(p, []byte("[main]\ngpgcheck=1\nip_resolve=4\n"), 0); err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(root, "var/lib/kvmnet/backup/etc%2Fdnf%2Fdnf.conf")
	if got := readFile(t, backup); got != orig {
		t.Fatalf("backup = %q, want %q", got, orig)
	}
	fi, _ := os.Stat(filepath.Join(root, p))
	if fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode not kept: %v", fi.Mode().Perm())
	}
	// A second change must not overwrite the backup of the user's original.
	res, err := s.Write(p, []byte("[main]\nip_resolve=4\n"), 0)
	if err != nil || !res.Changed {
		t.Fatalf("second write: %+v %v", res, err)
	}
	if !strings.Contains(res.Diff(), "-gpgcheck=1\n") {
		t.Fatalf("diff misses removed line:\n%s", res.Diff())
	}
	if got := readFile(t, backup); got != orig {
		t.Fatalf("backup overwritten: %q", got)
	}
	res, err = s.Restore(p)
	if err != nil || !res.Changed {
		t.Fatalf("restore: %+v %v", res, err)
	}
	if got := readFile(t, filepath.Join(root, p)); got != orig {
		t.Fatalf("restored content %q", got)
	}
	fi, _ = os.Stat(filepath.Join(root, p))
	if fi.Mode().Perm() != 0o640 {
		t.Fatalf("restored mode %v", fi.Mode().Perm())
	}
	if _, err := os.Stat(backup); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("backup still present after restore: %v", err)
	}
	if _, ok, _ := s.Entry(p); ok {
		t.Fatal("still managed after restore")
	}
	if _, err := s.Restore(p); !errors.Is(err, ErrNotManaged) {
		t.Fatalf("second restore: %v, want ErrNotManaged", err)
	}
	assertNoTempFiles(t, root)
}

func TestRemove(t *testing.T) {
	s, root := newStore(t)
	created := "/etc/apt/apt.conf.d/99kvmnet-force-ipv4"
	user := "/etc/dnf/dnf.conf"
	writeFile(t, filepath.Join(root, user), "[main]\n", 0o644)
	writeFile(t, filepath.Join(root, "etc/apt/apt.conf.d/00user"), "x;\n", 0o644)
	for _, p := range []string{created, user} {
		if _, err := s.Write(p, []byte("x\n"), 0); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name    string
		path    string
		wantErr string
	}{
		{"created by kvmnet", created, ""},
		{"existed before", user, "use Restore"},
		{"not managed", "/etc/apt/apt.conf.d/00user", "not managed"},
		{"outside allow-list", "/etc/passwd", "not allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := s.Remove(tc.path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !res.Changed || res.New != nil {
				t.Fatalf("remove: %+v %v", res, err)
			}
			if _, err := os.Stat(filepath.Join(root, tc.path)); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("file still there: %v", err)
			}
		})
	}
	if got := readFile(t, filepath.Join(root, "etc/apt/apt.conf.d/00user")); got != "x;\n" {
		t.Fatalf("unmanaged file touched: %q", got)
	}
}

func TestRestoreAll(t *testing.T) {
	s, root := newStore(t)
	writeFile(t, filepath.Join(root, "etc/dnf/dnf.conf"), "[main]\n", 0o644)
	for _, p := range []string{"/etc/dnf/dnf.conf", "/etc/sysctl.d/99-kvmnet-disable-ipv6.conf", "/etc/apt/apt.conf.d/99kvmnet-force-ipv4"} {
		if _, err := s.Write(p, []byte("changed\n"), 0); err != nil {
			t.Fatal(err)
		}
	}
	res, err := s.RestoreAll()
	if err != nil || len(res) != 3 {
		t.Fatalf("RestoreAll: %d results, %v", len(res), err)
	}
	if got := readFile(t, filepath.Join(root, "etc/dnf/dnf.conf")); got != "[main]\n" {
		t.Fatalf("dnf.conf = %q", got)
	}
	for _, p := range []string{"etc/sysctl.d/99-kvmnet-disable-ipv6.conf", "etc/apt/apt.conf.d/99kvmnet-force-ipv4"} {
		if _, err := os.Stat(filepath.Join(root, p)); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%s not removed", p)
		}
	}
	if m, _ := s.Managed(); len(m) != 0 {
		t.Fatalf("still managed: %v", m)
	}
}

func TestRefusedPaths(t *testing.T) {
	s, root := newStore(t)
	outside := t.TempDir()
	writeFile(t, filepath.Join(outside, "target"), "outside\n", 0o644)
	writeFile(t, filepath.Join(root, "etc/passwd"), "root:x:0:0\n", 0o644)
	// etc/dnf → a directory outside the root.
	if err := os.RemoveAll(filepath.Join(root, "etc/dnf")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "etc/dnf")); err != nil {
		t.Fatal(err)
	}
	// A file symlink inside an allowed dir pointing out of it.
	if err := os.Symlink(filepath.Join(outside, "target"), filepath.Join(root, "etc/sysctl.d/evil.conf")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../passwd", filepath.Join(root, "etc/sysctl.d/rel.conf")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "etc/sysctl.d/sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path string
	}{
		{"empty", ""},
		{"dotdot escape", "../etc/passwd"},
		{"dotdot inside", "etc/sysctl.d/../passwd"},
		{"dotdot deep", "/etc/sysctl.d/../../../../tmp/x"},
		{"absolute outside allow-list", "/etc/passwd"},
		{"root's home", "/root/.ssh/authorized_keys"},
		{"allowed dir itself", "/etc/sysctl.d"},
		{"subdirectory of allowed dir", "/etc/sysctl.d/sub/x.conf"},
		{"double slash", "/etc//sysctl.d/x.conf"},
		{"dot component", "/etc/sysctl.d/./x.conf"},
		{"trailing slash", "/etc/sysctl.d/x.conf/"},
		{"hidden name", "/etc/sysctl.d/.kvmnet-tmp-123"},
		{"NUL byte", "/etc/sysctl.d/x\x00.conf"},
		{"symlinked allowed dir", "/etc/dnf/dnf.conf"},
		{"symlinked file absolute", "/etc/sysctl.d/evil.conf"},
		{"symlinked file relative", "/etc/sysctl.d/rel.conf"},
		{"directory as file", "/etc/sysctl.d/sub"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Write(tc.path, []byte("pwned\n"), 0)
			if !errors.Is(err, ErrNotAllowed) {
				t.Fatalf("Write(%q) err = %v, want ErrNotAllowed", tc.path, err)
			}
			if err := s.Validate(tc.path); !errors.Is(err, ErrNotAllowed) {
				t.Fatalf("Validate(%q) = %v", tc.path, err)
			}
		})
	}
	if got := readFile(t, filepath.Join(outside, "target")); got != "outside\n" {
		t.Fatalf("file outside the root changed: %q", got)
	}
	if got := readFile(t, filepath.Join(root, "etc/passwd")); got != "root:x:0:0\n" {
		t.Fatalf("etc/passwd changed: %q", got)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 1 {
		t.Fatalf("something was created outside the root: %v", entries)
	}
	if _, err := os.Stat(filepath.Join(root, "var/lib/kvmnet/state.json")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("state written although every write was refused")
	}
}

func TestSymlinkedEtcRefused(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	if err := os.MkdirAll(filepath.Join(outside, "sysctl.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "etc")); err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write("/etc/sysctl.d/x.conf", []byte("x"), 0); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(filepath.Join(outside, "sysctl.d/x.conf")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("wrote through a symlinked /etc")
	}
}

func TestMissingAllowedDirIsCreated(t *testing.T) {
	root := t.TempDir()
	s, err := New(Options{Root: root, StateDir: "/var/lib/kvmnet"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write("/etc/sysctl.d/x.conf", []byte("a = 1\n"), 0); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(root, "etc/sysctl.d/x.conf")); got != Header+"a = 1\n" {
		t.Fatalf("content %q", got)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opts Options
	}{
		{"no root", Options{}},
		{"missing root", Options{Root: "/nonexistent/kvmnet-test-root"}},
		{"state dir escapes", Options{Root: t.TempDir(), StateDir: "../x"}},
		{"allowed escapes", Options{Root: t.TempDir(), Allowed: []string{"../etc"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.opts); err == nil {
				t.Fatal("New accepted bad options")
			}
		})
	}
}

func TestCorruptStateIsClearError(t *testing.T) {
	s, root := newStore(t)
	writeFile(t, filepath.Join(root, "var/lib/kvmnet/state.json"), "{not json", 0o600)
	_, err := s.Write("/etc/sysctl.d/x.conf", []byte("x"), 0)
	if err == nil || !strings.Contains(err.Error(), "state.json") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/sysctl.d/x.conf")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("file written although the state could not be recorded")
	}
}

func TestSnapshotRollback(t *testing.T) {
	s, root := newStore(t)
	const created = "/etc/sysctl.d/99-kvmnet-disable-ipv6.conf"
	const user = "/etc/dnf/dnf.conf"
	writeFile(t, filepath.Join(root, user), "[main]\n", 0o644)

	// Checkpoint 1: both untouched; apply changes; roll back.
	snap, err := s.Snapshot(created, user)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{created, user} {
		if _, err := s.Write(p, []byte("new\n"), 0); err != nil {
			t.Fatal(err)
		}
	}
	res, err := s.RestoreSnapshot(snap)
	if err != nil || len(res) != 2 {
		t.Fatalf("rollback: %v %v", res, err)
	}
	if _, err := os.Stat(filepath.Join(root, created)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("created file survived rollback")
	}
	if got := readFile(t, filepath.Join(root, user)); got != "[main]\n" {
		t.Fatalf("user file = %q", got)
	}
	if m, _ := s.Managed(); len(m) != 0 {
		t.Fatalf("records survived rollback: %v", m)
	}
	if entries, _ := os.ReadDir(filepath.Join(root, "var/lib/kvmnet/backup")); len(entries) != 0 {
		t.Fatalf("backups survived rollback: %v", entries)
	}

	// Checkpoint 2: kvmnet's file exists and is managed; Remove it; roll back brings it back.
	if _, err := s.Write(created, []byte("x = 1\n"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(user, []byte("[main]\nip_resolve=4\n"), 0); err != nil {
		t.Fatal(err)
	}
	snap, err = s.Snapshot(created, user)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Remove(created); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Restore(user); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RestoreSnapshot(snap); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(root, created)); got != Header+"x = 1\n" {
		t.Fatalf("created file after rollback = %q", got)
	}
	if got := readFile(t, filepath.Join(root, user)); got != Header+"[main]\nip_resolve=4\n" {
		t.Fatalf("user file after rollback = %q", got)
	}
	// The record and the backup of the user's original are back too: Restore still works.
	if _, err := s.Restore(user); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(root, user)); got != "[main]\n" {
		t.Fatalf("original not restorable after rollback: %q", got)
	}
}

func TestLineDiff(t *testing.T) {
	tests := []struct {
		name, a, b, want string
	}{
		{"identical", "a\nb\n", "a\nb\n", " a\n b\n"},
		{"added", "", "x\n", "+x\n"},
		{"removed", "x\n", "", "-x\n"},
		{"changed middle", "a\nb\nc\n", "a\nB\nc\n", " a\n+B\n-b\n c\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := LineDiff(tc.a, tc.b); got != tc.want {
				t.Fatalf("LineDiff = %q, want %q", got, tc.want)
			}
		})
	}
}

func assertNoTempFiles(t *testing.T, root string) {
	t.Helper()
	_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), ".kvmnet-tmp-") {
			t.Errorf("temporary file left behind: %s", path)
		}
		return nil
	})
}

func TestBackupLocationWithSlashRoot(t *testing.T) {
	s, err := New(Options{Root: "/"})
	if err != nil {
		t.Fatal(err)
	}
	if s.stateRel != "var/lib/kvmnet" || s.statePath() != "/var/lib/kvmnet/state.json" {
		t.Fatalf("state at %q / %q", s.stateRel, s.statePath())
	}
}
