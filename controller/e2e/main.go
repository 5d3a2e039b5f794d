//go:build lab

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// Suite is one lab e2e package: the lab it runs in, what it needs and how it starts its guests.
type Suite struct {
	// Title names the suite in messages and log lines ("install-agent"); empty for the main suite.
	Title string
	// NameEnv overrides the lab's name (e.g. KVMNET_LAB_STACKS_NAME); empty for the main suite,
	// whose name is KVMNET_LAB_NAME itself.
	NameEnv string
	// Suffix makes the default name KVMNET_LAB_NAME + "-" + Suffix. go test runs packages side by
	// side: a suite beside controller/e2e needs its own lab, or the main suite's host-wide checks see
	// its guests and one suite's down removes the other's lab.
	Suffix string
	// Tools must be on PATH.
	Tools []string
	// Prerequisites reports what else is missing ("" when nothing), given the repository root.
	Prerequisites func(repo string) string
	// Run brings the lab up, creates the guests and returns m.Run()'s code (or 1 when setup failed).
	Run func(m *testing.M, lab *Lab) int
	// After runs once Run has returned, before the lab goes down (e.g. to print a results table).
	After func()
}

// DefaultLabName is the lab's name when KVMNET_LAB_NAME is unset.
const DefaultLabName = "kvmnet-lab-e2e"

// Main is a lab suite's TestMain: KVMNET_LAB=0 skips it and says so; a missing prerequisite fails
// it with the command that installs it; otherwise it runs the suite and takes the lab down (unless
// KVMNET_LAB_KEEP=1), failing when down fails. It does not return.
func Main(m *testing.M, s Suite) {
	label := "LAB E2E"
	if s.Title != "" {
		label += " (" + s.Title + ")"
	}
	if os.Getenv("KVMNET_LAB") == "0" {
		fmt.Printf("=== %s SKIPPED on request (KVMNET_LAB=0): no real guests were started or tested ===\n", label)
		os.Exit(0)
	}
	_, file, _, _ := runtime.Caller(0)
	repo := filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
	if msg := s.prerequisites(repo); msg != "" {
		fmt.Fprintf(os.Stderr, "%s FAILED: prerequisite missing: %s\n(set KVMNET_LAB=0 to skip the lab suites explicitly)\n", label, msg)
		os.Exit(1)
	}
	name := s.labName()
	prefix := "e2e"
	if s.Title != "" {
		prefix = s.Title
	}
	lab := &Lab{Repo: repo, Name: name, Logf: func(f string, a ...any) {
		fmt.Printf("[%s %s] %s\n", prefix, time.Now().Format("15:04:05"), fmt.Sprintf(f, a...))
	}}
	code := s.Run(m, lab)
	if s.After != nil {
		s.After()
	}
	if os.Getenv("KVMNET_LAB_KEEP") == "1" {
		fmt.Printf("lab %s left running (KVMNET_LAB_KEEP=1); stop it with KVMNET_LAB_NAME=%s scripts/lab/down\n", name, name)
	} else if res := lab.Script(context.Background(), "down"); res.Code != 0 {
		fmt.Fprintf(os.Stderr, "lab %s down failed:\n%s\n", name, res)
		code = 1
	}
	os.Exit(code)
}

// labName is NameEnv's value, else KVMNET_LAB_NAME (default kvmnet-lab-e2e) with the suffix.
func (s Suite) labName() string {
	if s.NameEnv != "" {
		if n := os.Getenv(s.NameEnv); n != "" {
			return n
		}
	}
	name := os.Getenv("KVMNET_LAB_NAME")
	if name == "" {
		name = DefaultLabName
	}
	if s.Suffix != "" {
		name += "-" + s.Suffix
	}
	return name
}

// prerequisites checks what every suite needs (root, the tools, kvmnetctl), then the suite's own.
func (s Suite) prerequisites(repo string) string {
	if os.Geteuid() != 0 {
		return "root (the lab creates network namespaces and runs libvirtd/QEMU)"
	}
	for _, b := range s.Tools {
		if _, err := exec.LookPath(b); err != nil {
			return b + " not on PATH: run `make deps` (scripts/install-deps.sh)"
		}
	}
	ctl := filepath.Join(repo, "bin", "kvmnetctl")
	if c := os.Getenv("KVMNETCTL"); c != "" {
		ctl = c
	}
	if _, err := os.Stat(ctl); err != nil {
		return ctl + " not built: run `make build`"
	}
	if s.Prerequisites != nil {
		return s.Prerequisites(repo)
	}
	return ""
}
