// Package goldenfile compares test output with a file under a package's testdata/ and, under
// `go test -update`, rewrites that file: the one golden-file helper of every test package (rendered
// configs, parsed rule sets, CLI bytes), so that all of them accept the same flag and say the same
// thing on a difference.
package goldenfile

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/ with what the tests produce")

// Update reports whether the run was asked to rewrite golden files (-update).
func Update() bool { return *update }

// Check compares got with the file at path (relative to the test's package directory, e.g.
// "testdata/x.golden"). With -update it first writes got there, creating directories.
func Check(t testing.TB, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatalf("create the directory of golden file %s: %v", path, err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatalf("write golden file %s: %v", path, err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file %s: %v (go test -run %s -update creates it)", path, err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from its golden file (review, then go test -run '%s' -update to accept):\n--- got\n%s\n--- want\n%s",
			path, t.Name(), got, want)
	}
}
