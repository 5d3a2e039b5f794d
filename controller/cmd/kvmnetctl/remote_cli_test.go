package main

import (
	"strings"
	"testing"
)

// The remote command line carries the flags the user set, each as one --name=value word, never the
// --ssh flags, and the arguments after "--".
func TestRemoteArgs(t *testing.T) {
	g := &Globals{Stdout: &strings.Builder{}, Stderr: &strings.Builder{}, Getenv: func(string) string { return "" }}
	root := newRootCmd(g)
	cmd, rest, err := root.Find([]string{"guests", "status", "vm 1", "--check-target", "a:1", "--check-target", "b:2",
		"--timeout", "3s", "--ssh", "root@hv1", "-c", "qemu:///system", "--no-checks"})
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.ParseFlags(rest); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(remoteArgs(cmd, cmd.Flags().Args(), "json"), " | ")
	want := "-o | json | --connect=qemu:///system | --timeout=3s | guests | status | --check-target=a:1 | --check-target=b:2 | --no-checks=true | -- | vm 1"
	if got != want {
		t.Errorf("remoteArgs =\n%s\nwant\n%s", got, want)
	}
	if _, stderr, code := runCLI(t, nil, "--ssh", "hv1", "version"); code != ExitUsage || !strings.Contains(stderr, "--ssh works with") {
		t.Errorf("--ssh with version: exit %d %q", code, stderr)
	}
	if _, _, code := runCLI(t, nil, "fleet", "status", "-oProxyCommand=x"); code != ExitUsage {
		t.Errorf("fleet status with an option-like host: exit %d", code)
	}
}
