package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// kvmnetctl exporter --textfile against libvirt's test driver writes a parseable kvmnet.prom with
// the driver's domain and network; a bad --workers is a usage error.
func TestExporterTextfileCLI(t *testing.T) {
	dir := t.TempDir()
	_, stderr, code := runCLI(t, nil, "-c", "test:///default", "exporter", "--textfile", dir)
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	b, err := os.ReadFile(filepath.Join(dir, "kvmnet.prom"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"kvmnet_up 1\n", `kvmnet_network_active{network="default"} 1` + "\n",
		`kvmnet_guest_agent_reachable{domain="test",transport="none"} 0` + "\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("kvmnet.prom lacks %q:\n%s", want, b)
		}
	}
	if _, _, code := runCLI(t, nil, "-c", "test:///default", "exporter", "--workers", "0"); code != ExitUsage {
		t.Errorf("--workers 0: exit %d, want %d", code, ExitUsage)
	}
	if _, _, code := runCLI(t, nil, "-c", "test:///default", "exporter", "--textfile", filepath.Join(dir, "nope")); code != ExitFindings {
		t.Errorf("--textfile into a missing directory: exit %d, want %d", code, ExitFindings)
	}
}
