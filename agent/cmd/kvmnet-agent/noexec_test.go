package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// execAllowed are the packages linked into the agent that may import os/exec, with the reason they
// cannot run anything built from wire input.
var execAllowed = map[string]string{
	// conn_other.go runs dbus-launch to autolaunch a *session* bus; the agent only dials the system
	// bus (agent/nm: fixed address or $DBUS_SYSTEM_BUS_ADDRESS), so that path is never taken.
	"github.com/godbus/dbus/v5": "session-bus autolaunch only",
	// The network stacks' tools (netplan, networkctl, systemctl, journalctl) only, with arguments
	// agent/netstack builds from kernel interface names and fixed words; other programs and arguments
	// with unusual characters are refused (cmdrun_test.go).
	"github.com/kvmnet/kvmnet/agent/netstack/cmdrun": "allow-listed network stack tools only",
}

// TestNoShellOuts: the agent never starts processes from what it is sent. No package of the agent
// binary (its own or a dependency, transitively) imports os/exec except the allow-listed ones, and
// no non-test agent source calls os.StartProcess, syscall.Exec or syscall.ForkExec.
func TestNoShellOuts(t *testing.T) {
	out, err := exec.Command("go", "list", "-tags", "grpcnotrace", "-deps", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	var importers []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && slices.Contains(f[1:], "os/exec") {
			importers = append(importers, f[0])
		}
	}
	for _, p := range importers {
		if _, ok := execAllowed[p]; !ok {
			t.Errorf("%s imports os/exec and is linked into kvmnet-agent: wire input must never reach a process start (allow-list it here only with the reason it cannot)", p)
		}
	}
	t.Logf("os/exec importers linked into the agent: %v", importers)

	err = filepath.WalkDir("../..", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, call := range []string{"os.StartProcess(", "syscall.Exec(", "syscall.ForkExec(", "unix.Exec("} {
			if strings.Contains(string(b), call) {
				t.Errorf("%s calls %s", path, strings.TrimSuffix(call, "("))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
