package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// entries lists dir's names, so a test sees a leftover temporary file.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

func TestWriteCreatesAndReplaces(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "99-kvmnet.conf")
	for _, body := range []string{"net.ipv4.ip_forward = 1\n", "net.ipv4.ip_forward = 1\n# second\n"} {
		if err := Write(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != body {
			t.Fatalf("content %q, %v; want %q", got, err, body)
		}
		st, err := os.Stat(p)
		if err != nil || st.Mode().Perm() != 0o644 {
			t.Fatalf("mode %v, %v; want 0644", st.Mode().Perm(), err)
		}
	}
	if es := entries(t, dir); len(es) != 1 {
		t.Fatalf("directory holds %v, want only the file", es)
	}
}

// TestFailedWriteLeavesOldFile: a failure after the data is written (fsync) or at the rename leaves
// the old file byte for byte and no temporary file behind.
func TestFailedWriteLeavesOldFile(t *testing.T) {
	t.Run("fsync fails", func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "kvmnet.prom")
		if err := os.WriteFile(p, []byte("old\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		boom := errors.New("EIO")
		err := write(p, []byte("new\n"), 0o644, func(*os.File) error { return boom })
		if !errors.Is(err, boom) || !strings.Contains(err.Error(), "fsync") {
			t.Fatalf("err = %v, want the fsync error", err)
		}
		if got, _ := os.ReadFile(p); string(got) != "old\n" {
			t.Fatalf("old file became %q", got)
		}
		if es := entries(t, dir); len(es) != 1 {
			t.Fatalf("directory holds %v, want only the old file", es)
		}
	})
	t.Run("rename fails", func(t *testing.T) {
		// The target is a non-empty directory: rename(2) refuses to replace it (ENOTEMPTY/EISDIR),
		// for root too.
		dir := t.TempDir()
		p := filepath.Join(dir, "target")
		if err := os.MkdirAll(filepath.Join(p, "keep"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := Write(p, []byte("new\n"), 0o644); err == nil || !strings.Contains(err.Error(), "rename") {
			t.Fatalf("err = %v, want the rename error", err)
		}
		if st, err := os.Stat(filepath.Join(p, "keep")); err != nil || !st.IsDir() {
			t.Fatalf("old target changed: %v", err)
		}
		if es := entries(t, dir); len(es) != 1 {
			t.Fatalf("directory holds %v, want only the old target", es)
		}
	})
	t.Run("directory missing", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "absent", "f")
		if err := Write(p, []byte("x"), 0o644); err == nil || !strings.Contains(err.Error(), "temporary file next to "+p) {
			t.Fatalf("err = %v", err)
		}
	})
}
