package testenv

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// OptOutEnv is the variable that, set to 0, turns integration tests (root + real daemons in network
// namespaces) into announced skips. Any other value, or unset, makes a missing prerequisite a failure.
const OptOutEnv = "KVMNET_INTEGRATION"

// Require fails the test with a message naming what is missing and how to get it: root, and each of
// the given binaries on PATH. With KVMNET_INTEGRATION=0 the test is skipped instead, loudly.
func Require(t testing.TB, binaries ...string) {
	t.Helper()
	if os.Getenv(OptOutEnv) == "0" {
		t.Skipf("SKIPPED (explicit opt-out %s=0): integration test needs root and real daemons", OptOutEnv)
	}
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (run the tests as root: they create network namespaces)")
	}
	for _, b := range binaries {
		if _, err := exec.LookPath(b); err != nil {
			missing = append(missing, b+" (not on PATH)")
		}
	}
	if len(missing) > 0 {
		t.Fatalf("integration prerequisites missing: %s; run `bash scripts/install-deps.sh` as root, "+
			"or set %s=0 to skip integration tests explicitly", strings.Join(missing, ", "), OptOutEnv)
	}
}
