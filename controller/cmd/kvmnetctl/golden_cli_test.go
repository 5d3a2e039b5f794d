package main

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// tmpDir matches a test's t.TempDir() path.
var tmpDir = regexp.MustCompile(regexp.QuoteMeta(os.TempDir()) + `/Test[^/]*/[0-9]+`)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// cliGolden compares what kvmnetctl printed with testdata/NAME.golden, byte for byte (temporary
// directories replaced by $TMP so the file does not depend on the run).
func cliGolden(t *testing.T, name, got string) {
	t.Helper()
	got = tmpDir.ReplaceAllString(got, "$$TMP")
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("kvmnetctl output differs from %s (go test ./controller/cmd/kvmnetctl -run Golden -update to accept):\n%s", path, got)
	}
}

// TestCLIGolden runs the commands people read (tables and fix transcripts) against libvirt's test
// driver with real agents behind emulated channels, and checks the exact bytes on stdout and stderr.
func TestCLIGolden(t *testing.T) {
	uri := testNode(t)
	agent := startAgent(t)
	dir := t.TempDir()
	vm1 := &fxAgent{mac: "52:54:00:00:00:11"}
	node := filepath.Join(dir, "node.xml")
	if err := os.WriteFile(node, []byte("<node>\n"+nodeNetwork+nodeDomain("vm1", vm1.mac, fxChannel(t, dir, "vm1", vm1))+"</node>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fixURI := "test://" + node
	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"guests_status", []string{"guests", "status", "vm1", "vm2", "vm4", "-c", uri, "--timeout", "6s"}, ExitFindings},
		{"guests_status_wide", []string{"guests", "status", "vm1", "vm2", "vm4", "-c", uri, "--timeout", "6s", "-o", "wide"}, ExitFindings},
		{"host_check", []string{"host", "check", "-c", uri, "--timeout", "6s"}, ExitOK},
		{"agent_state", []string{"agent", "state", "--addr", agent}, ExitOK},
		{"guests_fix_dry_run", []string{"guests", "fix", "vm1", "-c", fixURI, "--timeout", "6s", "--dry-run"}, ExitOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errs, code := runCLI(t, nil, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d\n%s%s", code, tc.code, out, errs)
			}
			cliGolden(t, tc.name, out+"--- stderr\n"+errs)
		})
	}
}
