package remote

import (
	"context"
	"os/exec"
	"reflect"
	"strings"
	"testing"

	"github.com/kvmnet/kvmnet/controller/runner"
)

// What ssh does with the words after the destination: join them with spaces for the remote shell.
// Every word must come out of a real POSIX shell exactly as given.
func TestQuoteSurvivesTheRemoteShell(t *testing.T) {
	words := []string{"guests", "status", "it's", "$(touch /tmp/kvmnet-pwned)", "a b", "", ";", "`id`", "x\ny", "*", "--timeout=3s", `back\slash`, "\"dq\""}
	var quoted []string
	for _, w := range words {
		quoted = append(quoted, Quote(w))
	}
	// The remote user's shell gets one string: the program and its quoted words.
	out, err := exec.Command("sh", "-c", `printf '<%s>\n' `+strings.Join(quoted, " ")).Output()
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for _, w := range words {
		want.WriteString("<" + w + ">\n")
	}
	if string(out) != want.String() {
		t.Fatalf("the shell saw\n%s\nwant\n%s", out, want.String())
	}
}

func TestArgv(t *testing.T) {
	c := Client{ConfigFile: "/x/ssh_config", Options: []string{"StrictHostKeyChecking=yes"}, Kvmnetctl: "/opt/kvmnetctl"}
	got := c.Argv("root@hv1", []string{"-o", "json", "guests", "status", "web 1"})
	want := []string{"-n", "-T", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-F", "/x/ssh_config", "-o", "StrictHostKeyChecking=yes",
		"--", "root@hv1", "'/opt/kvmnetctl'", "'-o'", "'json'", "'guests'", "'status'", "'web 1'"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Argv =\n%q\nwant\n%q", got, want)
	}
}

func TestValidDestination(t *testing.T) {
	for _, d := range []string{"", "-oProxyCommand=x", "root@h v", "a\nb", "h'", "x\x1b"} {
		if ValidDestination(d) == nil {
			t.Errorf("ValidDestination(%q) accepted", d)
		}
	}
	for _, d := range []string{"hv1", "root@hv1.example.org", "admin@[2001:db8::1]", "alias"} {
		if err := ValidDestination(d); err != nil {
			t.Errorf("ValidDestination(%q): %v", d, err)
		}
	}
}

func TestRunExitCodes(t *testing.T) {
	f := runner.NewFake()
	c := Client{Runner: f}
	argv := func(dest string) []string { return append([]string{"ssh"}, c.Argv(dest, []string{"version"})...) }
	f.Set(runner.FakeResponse{Stdout: "{}", ExitCode: 1, Stderr: "kvmnetctl: 1 guest with error-level findings"}, argv("h1")...)
	f.Set(runner.FakeResponse{ExitCode: 255, Stderr: "Warning: x\nssh: connect to host h2 port 22: Connection refused\x1b[2J"}, argv("h2")...)
	f.Set(runner.FakeResponse{ExitCode: 127, Stderr: "sh: kvmnetctl: not found"}, argv("h3")...)
	ctx := context.Background()
	if r, err := c.Run(ctx, "h1", []string{"version"}); err != nil || r.ExitCode != 1 || string(r.Stdout) != "{}" || r.Message != "kvmnetctl: 1 guest with error-level findings" {
		t.Errorf("exit 1: %+v, %v", r, err)
	}
	if _, err := c.Run(ctx, "h2", []string{"version"}); err == nil || !strings.Contains(err.Error(), "Connection refused?[2J") || !strings.Contains(err.Error(), ErrUnreachable.Error()) {
		t.Errorf("ssh failure: %v", err)
	}
	if _, err := c.Run(ctx, "h3", []string{"version"}); err == nil || !strings.Contains(err.Error(), "kvmnetctl not found") {
		t.Errorf("missing kvmnetctl: %v", err)
	}
	if _, err := c.Run(ctx, "-oProxyCommand=evil", nil); err == nil {
		t.Error("option-like destination accepted")
	}
}
