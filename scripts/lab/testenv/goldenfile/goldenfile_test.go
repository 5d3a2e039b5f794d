package goldenfile

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// recorder keeps what Check reports instead of failing the test that runs it.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func TestCheck(t *testing.T) {
	p := filepath.Join(t.TempDir(), "testdata", "x.golden")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("a -> b\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	same := &recorder{TB: t}
	Check(same, p, []byte("a -> b\n"))
	if len(same.errs) != 0 {
		t.Errorf("equal bytes reported: %v", same.errs)
	}
	diff := &recorder{TB: t}
	Check(diff, p, []byte("a -> c\n"))
	if len(diff.errs) != 1 {
		t.Fatalf("a difference gave %d reports, want 1", len(diff.errs))
	}
	if b, _ := os.ReadFile(p); string(b) != "a -> b\n" {
		t.Errorf("golden file changed without -update: %q", b)
	}
}
