package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvmnet/kvmnet/agent/server"
	"github.com/kvmnet/kvmnet/agent/transport"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
	"github.com/kvmnet/kvmnet/scripts/lab/testenv/serialemu"
)

// fxAgent is a guest agent with a profile bound to eth0 while its NIC is enp1s0; it records every
// call so tests can prove nothing was changed.
type fxAgent struct {
	kvmnetv1.UnimplementedAgentServer
	mac   string
	mu    sync.Mutex
	calls []string
}

func (a *fxAgent) record(s string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, s)
}

func (a *fxAgent) changes() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, c := range a.calls {
		if c == "apply" || strings.HasPrefix(c, "confirm") || strings.HasPrefix(c, "rollback") {
			out = append(out, c)
		}
	}
	return out
}

func (a *fxAgent) GetState(context.Context, *kvmnetv1.GetStateRequest) (*kvmnetv1.GuestState, error) {
	a.record("state")
	return dgState(a.mac, nil, &kvmnetv1.Profile{Id: "Wired connection 1", Type: "802-3-ethernet", InterfaceName: "eth0",
		Ipv4Method: "auto", BoundToMissingInterface: true}), nil
}

func (a *fxAgent) RunChecks(_ context.Context, req *kvmnetv1.RunChecksRequest) (*kvmnetv1.RunChecksResponse, error) {
	a.record("checks")
	var out []*kvmnetv1.CheckResult
	for _, c := range req.GetChecks() {
		out = append(out, &kvmnetv1.CheckResult{Check: c, Ok: true})
	}
	return &kvmnetv1.RunChecksResponse{Results: out}, nil
}

func (a *fxAgent) Apply(_ context.Context, r *kvmnetv1.ApplyRequest) (*kvmnetv1.ApplyResponse, error) {
	ch := []*kvmnetv1.Change{{Kind: "profile", Target: "kvm-dhcp-enp1s0", Summary: "create profile kvm-dhcp-enp1s0"}}
	if r.GetDryRun() {
		a.record("apply-dry")
		return &kvmnetv1.ApplyResponse{Changes: ch, DryRun: true}, nil
	}
	a.record("apply")
	return &kvmnetv1.ApplyResponse{Changes: ch, CheckpointId: "cp-fx"}, nil
}

func (a *fxAgent) Confirm(_ context.Context, r *kvmnetv1.ConfirmRequest) (*kvmnetv1.ConfirmResponse, error) {
	a.record("confirm " + r.GetCheckpointId())
	return &kvmnetv1.ConfirmResponse{}, nil
}

func (a *fxAgent) Rollback(_ context.Context, r *kvmnetv1.RollbackRequest) (*kvmnetv1.RollbackResponse, error) {
	a.record("rollback " + r.GetCheckpointId())
	return &kvmnetv1.RollbackResponse{Restored: []string{"profile Wired connection 1"}}, nil
}

// fxChannel serves a behind an emulated virtio-serial channel (real serial listener + resync).
func fxChannel(t *testing.T, dir, name string, a kvmnetv1.AgentServer) string {
	t.Helper()
	e, err := serialemu.New(filepath.Join(dir, name+".sock"), serialemu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	l := transport.NewSerialListener(e, transport.SerialOptions{})
	s := server.New(a, server.Options{AllowApply: true})
	go func() { _ = s.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Stop(ctx)
		_ = l.Close()
	})
	return e.HostPath()
}

// fxShutoffDomain is a test-driver domain in state shut off (test:runstate 5) with a channel.
func fxShutoffDomain(name, mac, sock string) string {
	d := nodeDomain(name, mac, sock)
	d = strings.Replace(d, "<domain type='test'>", "<domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>", 1)
	return strings.Replace(d, "  </domain>", "    <test:runstate>5</test:runstate>\n  </domain>", 1)
}

// TestGuestsFixCLI runs `kvmnetctl guests fix` against libvirt's test driver with agents behind
// emulated virtio-serial channels: bad input (unknown VM, VM without agent, VM shut off, NIC MAC
// not in the domain) fails with a clear message and the right exit code and never reaches Apply;
// a fix that cannot be verified (the test driver has no DHCP leases) is rolled back and exits 1
// with the reason; a dry run previews only.
func TestGuestsFixCLI(t *testing.T) {
	dir := t.TempDir()
	vm1 := &fxAgent{mac: "52:54:00:00:00:11"}
	vm5 := &fxAgent{mac: "52:54:00:00:00:15"}
	xml := "<node>\n" + nodeNetwork +
		nodeDomain("vm1", vm1.mac, fxChannel(t, dir, "vm1", vm1)) +
		nodeDomain("vm4", "52:54:00:00:00:14", "") +
		fxShutoffDomain("vm5", vm5.mac, fxChannel(t, dir, "vm5", vm5)) + "</node>\n"
	node := filepath.Join(dir, "node.xml")
	if err := os.WriteFile(node, []byte(xml), 0o644); err != nil {
		t.Fatal(err)
	}
	uri := "test://" + node

	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  []string
	}{
		{"unknown VM", []string{"ghost", "--yes"}, ExitUsage, []string{"ghost"}},
		{"VM without agent channel", []string{"vm4", "--yes"}, ExitFindings, []string{`domain "vm4" has no kvmnet agent channel`, "kvmnetctl guests enable-channel vm4"}},
		{"VM shut off", []string{"vm5", "--yes"}, ExitFindings, []string{`domain "vm5" is shut off`, "virsh start vm5"}},
		{"NIC MAC not in the domain", []string{"vm1", "--yes", "--nic", "52:54:00:99:99:99"}, ExitUsage, []string{`domain "vm1" has no NIC with MAC 52:54:00:99:99:99`, "its NICs: 52:54:00:00:00:11"}},
		{"rollback timeout out of range", []string{"vm1", "--yes", "--rollback-timeout", "2s"}, ExitUsage, []string{"must be between 10s and 1h"}},
		{"no terminal and no --yes", []string{"vm1"}, ExitUsage, []string{"pass --yes to apply, or --dry-run to preview"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errs, code := runCLI(t, nil, append([]string{"guests", "fix", "-c", uri, "--timeout", "6s"}, tc.args...)...)
			t.Logf("kvmnetctl guests fix %s -> exit %d\n%s%s", strings.Join(tc.args, " "), code, out, errs)
			if code != tc.code {
				t.Errorf("exit %d, want %d", code, tc.code)
			}
			for _, m := range tc.msg {
				if !strings.Contains(errs, m) {
					t.Errorf("stderr lacks %q: %s", m, errs)
				}
			}
			if c := append(vm1.changes(), vm5.changes()...); len(c) != 0 {
				t.Fatalf("bad input reached the agent's changes: %v", c)
			}
		})
	}

	t.Run("dry run previews only", func(t *testing.T) {
		out, errs, code := runCLI(t, nil, "guests", "fix", "vm1", "-c", uri, "--timeout", "6s", "--dry-run")
		if code != ExitOK || !strings.Contains(out, "dry run: nothing was changed") || !strings.Contains(out, "create profile kvm-dhcp-enp1s0") {
			t.Fatalf("exit %d\n%s%s", code, out, errs)
		}
		if c := vm1.changes(); len(c) != 0 || !slices.Contains(vm1.calls, "apply-dry") {
			t.Fatalf("agent calls %v", vm1.calls)
		}
	})

	t.Run("unverifiable fix is rolled back and exits 1 with the reason", func(t *testing.T) {
		out, errs, code := runCLI(t, nil, "guests", "fix", "vm1", "-c", uri, "--timeout", "6s", "--yes", "--rollback-timeout", "10s", "-o", "json")
		if code != ExitFindings {
			t.Fatalf("exit %d, want 1\n%s%s", code, out, errs)
		}
		for _, m := range []string{"fix did not verify and was rolled back", "no DHCP lease for 52:54:00:00:00:11 on network default",
			"verification failed, vm1 rolled back (restored: profile Wired connection 1)"} {
			if !strings.Contains(errs, m) {
				t.Errorf("stderr lacks %q:\n%s", m, errs)
			}
		}
		var res struct {
			Confirmed  bool     `json:"confirmed"`
			RolledBack bool     `json:"rolled_back"`
			Failures   []string `json:"failures"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("-o json: %v\n%s", err, out)
		}
		if res.Confirmed || !res.RolledBack || len(res.Failures) == 0 {
			t.Fatalf("result %+v", res)
		}
		if got := vm1.changes(); !slices.Equal(got, []string{"apply", "rollback cp-fx"}) {
			t.Fatalf("agent changes %v, want apply then rollback", got)
		}
	})
}
