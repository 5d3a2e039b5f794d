package managedfile

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/kvmnet/kvmnet/scripts/lab/testenv"
)

// ownerOf returns "uid:gid mode" of path.
func ownerOf(t *testing.T, path string) string {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return fmt.Sprintf("%d:%d %o", st.Uid, st.Gid, fi.Mode().Perm())
}

// TestReplacedAndRestoredFilesKeepOwner: a file owned by someone else (uid 1234, gid 5678, mode
// 0640: dnf.conf edited by an admin tool) keeps owner, group and mode when kvmnet replaces it, when
// Restore puts the original back, and when a checkpoint's snapshot is rolled back. Needs root
// (chown).
func TestReplacedAndRestoredFilesKeepOwner(t *testing.T) {
	testenv.Require(t) // root: chown to another user
	s, root := newStore(t)
	abs := filepath.Join(root, "etc/dnf/dnf.conf")
	writeFile(t, abs, "[main]\ngpgcheck=1\n", 0o640)
	if err := os.Chown(abs, 1234, 5678); err != nil {
		t.Fatal(err)
	}
	const want = "1234:5678 640"

	if _, err := s.Write("/etc/dnf/dnf.conf", []byte("[main]\nip_resolve=4\n"), 0); err != nil {
		t.Fatal(err)
	}
	if got := ownerOf(t, abs); got != want {
		t.Fatalf("after Write: %s, want %s", got, want)
	}
	snap, err := s.Snapshot("/etc/dnf/dnf.conf")
	if err != nil {
		t.Fatal(err)
	}
	// Something changes the file's owner and content after the snapshot (a second write made as
	// root, an admin's chown): the rollback puts all of it back.
	if err := os.Chown(abs, 0, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write("/etc/dnf/dnf.conf", []byte("[main]\nip_resolve=6\n"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RestoreSnapshot(snap); err != nil {
		t.Fatal(err)
	}
	if got := ownerOf(t, abs); got != want {
		t.Fatalf("after RestoreSnapshot: %s, want %s", got, want)
	}
	if _, err := s.Restore("/etc/dnf/dnf.conf"); err != nil {
		t.Fatal(err)
	}
	if got, body := ownerOf(t, abs), readFile(t, abs); got != want || body != "[main]\ngpgcheck=1\n" {
		t.Fatalf("after Restore: %s %q, want %s and the original content", got, body, want)
	}
}
