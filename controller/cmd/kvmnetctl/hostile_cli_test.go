package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kvmnet/kvmnet/agent/server"
	"github.com/kvmnet/kvmnet/agent/transport"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// Hostile text a compromised guest can put in any string it reports: a terminal title and screen
// clear (ESC), the 8-bit CSI (C1), a right-to-left override and an isolate that reorder what follows.
const evil = "x\x1b]0;pwned\x07\x1b[2J\u009b31m\u202eexe.txt\u2066"

// evilEscaped is evil as kvmnetctl must show it.
const evilEscaped = `x\x1b]0;pwned\x07\x1b[2J\x9b31m\u202eexe.txt\u2066`

// hostileAgent answers every call with hostile text in every field kvmnetctl prints.
type hostileAgent struct {
	kvmnetv1.UnimplementedAgentServer
	mac string
	// stateErr, when set, is GetState's gRPC status message.
	stateErr string
}

func (a *hostileAgent) GetState(context.Context, *kvmnetv1.GetStateRequest) (*kvmnetv1.GuestState, error) {
	if a.stateErr != "" {
		return nil, status.Error(codes.Internal, a.stateErr)
	}
	st := dgState(a.mac, nil, &kvmnetv1.Profile{Id: "p" + evil, Type: "802-3-ethernet", InterfaceName: "eth" + evil,
		Ipv4Method: "auto", BoundToMissingInterface: true})
	st.Hostname = "h" + evil
	st.AgentVersion = "v" + evil
	st.Interfaces[0].Name = "enp1s0" + evil
	st.Interfaces[0].Kind = "k" + evil
	st.Interfaces[0].Ipv6 = []string{"fe80::1/64" + evil}
	st.CollectionErrors = []string{"nm: " + evil}
	return st, nil
}

func (a *hostileAgent) RunChecks(_ context.Context, req *kvmnetv1.RunChecksRequest) (*kvmnetv1.RunChecksResponse, error) {
	var out []*kvmnetv1.CheckResult
	for _, c := range req.GetChecks() {
		out = append(out, &kvmnetv1.CheckResult{Check: c, Ok: false, Error: "refused" + evil})
	}
	return &kvmnetv1.RunChecksResponse{Results: out}, nil
}

func (a *hostileAgent) Apply(_ context.Context, r *kvmnetv1.ApplyRequest) (*kvmnetv1.ApplyResponse, error) {
	ch := []*kvmnetv1.Change{{Kind: "profile" + evil, Target: "t" + evil, Summary: "s" + evil, Diff: "+a" + evil + "\n-b" + evil + "\n"}}
	if r.GetDryRun() {
		return &kvmnetv1.ApplyResponse{Changes: ch, DryRun: true}, nil
	}
	return &kvmnetv1.ApplyResponse{Changes: ch, CheckpointId: "cp" + evil}, nil
}

func (a *hostileAgent) Rollback(context.Context, *kvmnetv1.RollbackRequest) (*kvmnetv1.RollbackResponse, error) {
	return &kvmnetv1.RollbackResponse{Restored: []string{"profile " + evil, "file " + evil}}, nil
}

// unsafeAt names the first character of s a terminal would interpret instead of show ("" when there
// is none besides newlines).
func unsafeAt(s string) string {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			return fmt.Sprintf("invalid UTF-8 byte %#x at %d: %q", s[i], i, s[max(0, i-20):i])
		case r == '\n':
		case r < 0x20 || (r >= 0x7f && r <= 0x9f) || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069):
			return fmt.Sprintf("%U at %d after %q", r, i, s[max(0, i-20):i])
		}
		i += size
	}
	return ""
}

// TestHostileGuestTextIsEscaped runs the commands that print guest text (agent state, guests status,
// guests fix: plan, change preview before the prompt, checkpoint id, rollback list, check errors,
// skip reasons, gRPC status messages) against an agent that puts terminal escapes, C1 controls,
// bidi overrides and invalid UTF-8 everywhere: stdout and stderr hold none of them raw, and show
// them escaped.
func TestHostileGuestTextIsEscaped(t *testing.T) {
	dir := t.TempDir()
	a := &hostileAgent{mac: "52:54:00:00:00:21"}
	sock := fxChannel(t, dir, "vm1", a)
	node := filepath.Join(dir, "node.xml")
	if err := os.WriteFile(node, []byte("<node>\n"+nodeNetwork+nodeDomain("vm1", a.mac, sock)+"</node>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	uri := "test://" + node
	unix := filepath.Join(dir, "agent.sock")
	startHostile(t, unix, a)
	bad := &hostileAgent{stateErr: "boom" + evil + "\xff\xfe"}
	badSock := filepath.Join(dir, "bad.sock")
	startHostile(t, badSock, bad)

	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"agent state", []string{"agent", "state", "--addr", "unix:" + unix},
			[]string{"enp1s0" + evilEscaped, "k" + evilEscaped, "host h" + evilEscaped, "agent v" + evilEscaped, "nm: " + evilEscaped}},
		{"agent state gRPC status message", []string{"agent", "state", "--addr", "unix:" + badSock},
			[]string{"boom" + evilEscaped}},
		{"guests status", []string{"guests", "status", "-c", uri, "--timeout", "6s"},
			[]string{"enp1s0" + evilEscaped, "interface-name eth" + evilEscaped}},
		{"guests fix dry run", []string{"guests", "fix", "vm1", "-c", uri, "--timeout", "6s", "--dry-run"},
			[]string{"* profile" + evilEscaped + " t" + evilEscaped + ": s" + evilEscaped, "+a" + evilEscaped, "-b" + evilEscaped}},
		{"guests fix rolled back", []string{"guests", "fix", "vm1", "-c", uri, "--timeout", "6s", "--yes", "--rollback-timeout", "10s"},
			[]string{"applied under checkpoint cp" + evilEscaped, "restored: profile " + evilEscaped + ", file " + evilEscaped}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errs, code := runCLI(t, nil, tc.args...)
			t.Logf("exit %d\n%s--- stderr\n%s", code, out, errs)
			for name, s := range map[string]string{"stdout": out, "stderr": errs} {
				if u := unsafeAt(s); u != "" {
					t.Errorf("%s reaches the terminal raw: %s", name, u)
				}
			}
			for _, w := range tc.want {
				if !strings.Contains(out+errs, w) {
					t.Errorf("output lacks the escaped text %q", w)
				}
			}
		})
	}
}

// startHostile serves a on a unix socket.
func startHostile(t *testing.T, path string, a kvmnetv1.AgentServer) {
	t.Helper()
	l, err := transport.ListenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	s := server.New(a, server.Options{AllowApply: true})
	go func() { _ = s.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Stop(ctx)
	})
}
