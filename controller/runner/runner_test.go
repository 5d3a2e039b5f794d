package runner

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kvmnet/kvmnet/scripts/lab/testenv"
)

func TestExec(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name       string
		argv       []string
		wantOut    string
		wantErr    bool
		wantCode   int
		wantStderr string
		notFound   bool
	}{
		{name: "ok", argv: []string{"echo", "hello", "two words"}, wantOut: "hello two words\n"},
		{name: "exit status", argv: []string{"false"}, wantErr: true, wantCode: 1},
		{name: "stderr kept", argv: []string{"ls", "/kvmnet-no-such-dir"}, wantErr: true, wantCode: 2,
			wantStderr: "kvmnet-no-such-dir"},
		{name: "not found", argv: []string{"kvmnet-no-such-program"}, wantErr: true, wantCode: -1, notFound: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := NewExec().Run(ctx, tc.argv[0], tc.argv[1:]...)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if string(out) != tc.wantOut {
				t.Fatalf("stdout = %q, want %q", out, tc.wantOut)
			}
			if err == nil {
				return
			}
			var ce *CommandError
			if !errors.As(err, &ce) {
				t.Fatalf("error %T is not a *CommandError", err)
			}
			if ce.ExitCode != tc.wantCode || ExitCode(err) != tc.wantCode {
				t.Fatalf("exit code %d, want %d", ce.ExitCode, tc.wantCode)
			}
			if !strings.Contains(err.Error(), tc.argv[0]) {
				t.Fatalf("error %q does not name the command", err)
			}
			if !strings.Contains(ce.Stderr, tc.wantStderr) || !strings.Contains(err.Error(), tc.wantStderr) {
				t.Fatalf("stderr %q / error %q lacks %q", ce.Stderr, err, tc.wantStderr)
			}
			if IsNotFound(err) != tc.notFound {
				t.Fatalf("IsNotFound = %v, want %v", IsNotFound(err), tc.notFound)
			}
		})
	}
}

func TestExecContextCancel(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := NewExec().Run(ctx, "sleep", "10")
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("command was not killed at the deadline")
	}
}

func TestArgvPrefixes(t *testing.T) {
	tests := []struct {
		name string
		opts []Option
		want string
	}{
		{name: "plain", want: "iptables-save -t filter"},
		{name: "netns", opts: []Option{InNetns("kvmt-fw-1")}, want: "ip netns exec kvmt-fw-1 iptables-save -t filter"},
		{name: "nsenter", opts: []Option{InNamespacesOf(42)}, want: "nsenter -t 42 -m -n -- iptables-save -t filter"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := strings.Join(NewExec(tc.opts...).Argv("iptables-save", "-t", "filter"), " "); got != tc.want {
				t.Fatalf("argv %q, want %q", got, tc.want)
			}
		})
	}
}

func TestQuote(t *testing.T) {
	got := Quote([]string{"ufw", "route", "allow", "in", "on", "virbr0", "", "it's", "a b"})
	want := `ufw route allow in on virbr0 '' 'it'\''s' 'a b'`
	if got != want {
		t.Fatalf("Quote = %s, want %s", got, want)
	}
}

func TestFake(t *testing.T) {
	ctx := context.Background()
	f := NewFake().SetOutput("rules\n", "iptables-save").
		Set(FakeResponse{ExitCode: 1, Stderr: "Bad rule"}, "iptables", "-C", "X")
	if out, err := f.Run(ctx, "iptables-save"); err != nil || string(out) != "rules\n" {
		t.Fatalf("Run = %q, %v", out, err)
	}
	_, err := f.Run(ctx, "iptables", "-C", "X")
	if ExitCode(err) != 1 || !strings.Contains(err.Error(), "Bad rule") {
		t.Fatalf("err = %v", err)
	}
	_, err = f.Run(ctx, "nft", "-j", "list", "ruleset")
	if !IsNotFound(err) || !errors.Is(err, exec.ErrNotFound) {
		t.Fatalf("unknown argv: err = %v, want not found", err)
	}
	if n := len(f.Calls()); n != 3 {
		t.Fatalf("recorded %d calls, want 3", n)
	}
}

// TestExecInNetns runs a command inside a namespace the test creates: it sees only that namespace's
// interfaces.
func TestExecInNetns(t *testing.T) {
	testenv.Require(t, "ip")
	ns := testenv.NewNetns(t, "fw")
	out, err := NewExec(InNetns(ns.Name)).Run(context.Background(), "ip", "-o", "link", "show")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "lo:") {
		t.Fatalf("links inside %s: %q, want only lo", ns.Name, out)
	}
	_, err = NewExec(InNetns(ns.Name)).Run(context.Background(), "kvmnet-no-such-program")
	if !IsNotFound(err) {
		t.Fatalf("missing program inside netns: %v", err)
	}
}
