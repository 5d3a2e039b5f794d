package fix

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/kvmnet/kvmnet/controller/diagnose"
	"github.com/kvmnet/kvmnet/controller/fixplan"
	"github.com/kvmnet/kvmnet/controller/snapshot"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

const mac = "52:54:00:00:00:01"

// fakeAgent records calls; checksOK decides RunChecks results.
type fakeAgent struct {
	kvmnetv1.AgentClient
	mu       sync.Mutex
	calls    []string
	checksOK bool
	closed   bool
	// staysBroken keeps the finding after a verified fix (the fix did not clear it).
	staysBroken bool
}

func (a *fakeAgent) record(s string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, s)
}

func (a *fakeAgent) Apply(_ context.Context, r *kvmnetv1.ApplyRequest, _ ...grpc.CallOption) (*kvmnetv1.ApplyResponse, error) {
	ch := []*kvmnetv1.Change{{Kind: "profile", Target: "kvm-dhcp-enp1s0", Summary: "create", Diff: "+ipv4.method=auto"}}
	if r.GetDryRun() {
		a.record("apply-dry")
		return &kvmnetv1.ApplyResponse{Changes: ch, DryRun: true}, nil
	}
	a.record("apply")
	return &kvmnetv1.ApplyResponse{Changes: ch, CheckpointId: "cp1"}, nil
}

func (a *fakeAgent) Confirm(_ context.Context, r *kvmnetv1.ConfirmRequest, _ ...grpc.CallOption) (*kvmnetv1.ConfirmResponse, error) {
	a.record("confirm " + r.GetCheckpointId())
	return &kvmnetv1.ConfirmResponse{}, nil
}

func (a *fakeAgent) Rollback(_ context.Context, r *kvmnetv1.RollbackRequest, _ ...grpc.CallOption) (*kvmnetv1.RollbackResponse, error) {
	a.record("rollback " + r.GetCheckpointId())
	return &kvmnetv1.RollbackResponse{Restored: []string{"profile Wired connection 1"}}, nil
}

func (a *fakeAgent) RunChecks(_ context.Context, r *kvmnetv1.RunChecksRequest, _ ...grpc.CallOption) (*kvmnetv1.RunChecksResponse, error) {
	a.record("checks")
	var res []*kvmnetv1.CheckResult
	for _, c := range r.GetChecks() {
		cr := &kvmnetv1.CheckResult{Check: c, Ok: a.checksOK}
		if !a.checksOK {
			cr.Error = "timeout"
		}
		res = append(res, cr)
	}
	return &kvmnetv1.RunChecksResponse{Results: res}, nil
}

func (a *fakeAgent) Close() error { a.closed = true; return nil }

func brokenGuestSnapshot() (snapshot.Snapshot, []diagnose.Finding) {
	s := snapshot.Snapshot{
		URI: "test:///", Host: snapshot.Host{Uplink: "eth0"},
		Networks: []snapshot.Network{{Name: "default", Active: true, Forward: snapshot.ForwardNAT, Bridge: "virbr0", DNSEnabled: true,
			IPs: []snapshot.NetworkIP{{Family: 4, Address: "192.168.122.1", Prefix: 24, Subnet: "192.168.122.0/24",
				DHCPRanges: []snapshot.DHCPRange{{Start: "192.168.122.2", End: "192.168.122.254"}}}}}},
		Domains: []snapshot.Domain{{Name: "vm1", State: "running",
			NICs: []snapshot.DomainNIC{{MAC: mac, Type: "network", Network: "default", Bridge: "virbr0"}}}},
		Guests: []snapshot.Guest{{Domain: "vm1", Transport: snapshot.TransportUnix, Address: "unix:/x", Reachable: true,
			State: &kvmnetv1.GuestState{Config: &kvmnetv1.AgentConfig{AllowApply: true}}}},
	}
	return s, []diagnose.Finding{{Code: diagnose.CodeGuestProfileWrongInterface, Severity: diagnose.SeverityError, Domain: "vm1", MAC: mac}}
}

func guestDeps(agent *fakeAgent, leases func() []snapshot.Lease, out *bytes.Buffer) GuestDeps {
	calls := 0
	return GuestDeps{
		// The first collection finds the broken profile; later ones (after a fix) find it gone,
		// unless the agent keeps it broken.
		Snapshot: func(context.Context) (snapshot.Snapshot, []diagnose.Finding, error) {
			calls++
			s, f := brokenGuestSnapshot()
			if calls > 1 && !agent.staysBroken {
				f = nil
			}
			return s, f, nil
		},
		DialAgent: func(context.Context, snapshot.Guest) (Agent, error) { return agent, nil },
		Leases: func(_ context.Context, network string) ([]snapshot.Lease, error) {
			if network != "default" {
				return nil, errors.New("unexpected network " + network)
			}
			return leases(), nil
		},
		Events:       record(out),
		PollInterval: 10 * time.Millisecond,
	}
}

func TestGuestFix(t *testing.T) {
	lease := []snapshot.Lease{{MAC: mac, IP: "192.168.122.50", Family: 4}}
	cases := []struct {
		name        string
		dryRun      bool
		checksOK    bool
		leases      []snapshot.Lease
		confirm     func(string) (bool, error)
		wantCalls   []string
		wantErr     error
		wantOut     string
		confirmed   bool
		rolledBack  bool
		staysBroken bool
	}{
		{name: "verified fix is confirmed", checksOK: true, leases: lease,
			wantCalls: []string{"apply-dry", "apply", "checks", "confirm cp1"}, wantOut: "verified and confirmed", confirmed: true},
		{name: "dry run changes nothing", dryRun: true, checksOK: true, leases: lease,
			wantCalls: []string{"apply-dry"}, wantOut: "dry run: nothing was changed"},
		{name: "declined changes nothing", checksOK: true, leases: lease,
			confirm:   func(string) (bool, error) { return false, nil },
			wantCalls: []string{"apply-dry"}, wantOut: "declined"},
		{name: "no lease: rolled back", checksOK: true, leases: nil,
			wantCalls: []string{"apply-dry", "apply", "rollback cp1"}, wantErr: ErrVerificationFailed,
			wantOut: "no DHCP lease for " + mac, rolledBack: true},
		{name: "checks fail: rolled back", checksOK: false, leases: lease,
			wantErr: ErrVerificationFailed, wantOut: "check gateway-v4", rolledBack: true},
		{name: "verified but the finding remains: exit 1", checksOK: true, leases: lease, staysBroken: true,
			wantCalls: []string{"apply-dry", "apply", "checks", "confirm cp1"}, wantErr: ErrFindingsRemain,
			wantOut: "StillReported {Finding:{Code:guest_profile_wrong_interface", confirmed: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			agent := &fakeAgent{checksOK: tc.checksOK, staysBroken: tc.staysBroken}
			var out bytes.Buffer
			d := guestDeps(agent, func() []snapshot.Lease { return tc.leases }, &out)
			d.Confirm = tc.confirm
			// 5 s is the verification floor: a failing case polls that long, so keep the rollback short.
			res, err := Guest(context.Background(), d, fixplan.GuestOptions{Domain: "vm1", RollbackTimeout: 10 * time.Second}, tc.dryRun)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if tc.wantCalls != nil && !slices.Equal(agent.calls, tc.wantCalls) {
				t.Errorf("agent calls = %v, want %v", agent.calls, tc.wantCalls)
			}
			if tc.rolledBack && !slices.Contains(agent.calls, "rollback cp1") {
				t.Errorf("no rollback in %v", agent.calls)
			}
			if slices.Contains(agent.calls, "confirm cp1") && tc.rolledBack {
				t.Errorf("confirmed a fix that did not verify: %v", agent.calls)
			}
			if res.Confirmed != tc.confirmed || res.RolledBack != tc.rolledBack {
				t.Errorf("confirmed=%v rolledBack=%v, want %v %v", res.Confirmed, res.RolledBack, tc.confirmed, tc.rolledBack)
			}
			if !strings.Contains(out.String()+errString(err), tc.wantOut) {
				t.Errorf("output lacks %q:\n%s", tc.wantOut, out.String())
			}
			if !agent.closed {
				t.Error("agent connection left open")
			}
		})
	}
}

// record writes each event as one %+v line: the tests look for the facts, the CLI's wording is
// checked by controller/output's tests.
func record(out *bytes.Buffer) func(Event) {
	return func(e Event) { fmt.Fprintf(out, "%T %+v\n", e, e) }
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestGuestFixBadInput(t *testing.T) {
	agent := &fakeAgent{checksOK: true}
	var out bytes.Buffer
	d := guestDeps(agent, func() []snapshot.Lease { return nil }, &out)
	for _, tc := range []struct{ name, domain, mac, want string }{
		{"unknown VM", "nope", "", `domain not found: "nope"`},
		{"MAC not in domain", "vm1", "52:54:00:99:99:99", "has no NIC with MAC"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Guest(context.Background(), d, fixplan.GuestOptions{Domain: tc.domain, MAC: tc.mac}, false)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if len(agent.calls) != 0 {
				t.Fatalf("agent was called on bad input: %v", agent.calls)
			}
		})
	}
}

// fakeHost applies steps to an in-memory set of findings.
type fakeHost struct {
	findings []diagnose.Finding
	done     []fixplan.HostStepKind
	fail     fixplan.HostStepKind
	noEffect bool
}

// steps is a table whose every kind shows a virsh command and applies to the in-memory findings.
func (h *fakeHost) steps() HostSteps {
	step := func(_ context.Context, st fixplan.HostStep) (HostChange, error) {
		return HostChange{Commands: []string{"virsh net-start " + st.Network}, Do: func(context.Context) error {
			if st.Kind == h.fail {
				return errors.New("libvirt said no")
			}
			h.done = append(h.done, st.Kind)
			if !h.noEffect {
				h.findings = slices.DeleteFunc(h.findings, func(f diagnose.Finding) bool { return slices.Contains(st.Codes, f.Code) })
			}
			return nil
		}}, nil
	}
	return HostSteps{fixplan.StepStartNetwork: step}
}

func TestHostFix(t *testing.T) {
	inactive := diagnose.Finding{Code: diagnose.CodeNetworkInactive, Severity: diagnose.SeverityError, Network: "default"}
	cases := []struct {
		name     string
		host     *fakeHost
		dryRun   bool
		wantDone []fixplan.HostStepKind
		wantErr  string
		wantOut  string
	}{
		{name: "fix and re-check", host: &fakeHost{findings: []diagnose.Finding{inactive}},
			wantDone: []fixplan.HostStepKind{fixplan.StepStartNetwork}, wantOut: "every finding the steps addressed is gone"},
		{name: "dry run prints the command, runs nothing", host: &fakeHost{findings: []diagnose.Finding{inactive}}, dryRun: true,
			wantOut: "virsh net-start default"},
		{name: "finding still there after the step", host: &fakeHost{findings: []diagnose.Finding{inactive}, noEffect: true},
			wantDone: []fixplan.HostStepKind{fixplan.StepStartNetwork}, wantErr: "1 finding(s) remain", wantOut: "StillReported"},
		{name: "step fails", host: &fakeHost{findings: []diagnose.Finding{inactive}, fail: fixplan.StepStartNetwork},
			wantErr: "1 step(s) failed", wantOut: "Err:libvirt said no"},
		{name: "a kind without an entry is not done", host: &fakeHost{findings: []diagnose.Finding{
			{Code: diagnose.CodeIPForwardOff, Severity: diagnose.SeverityError}}},
			wantErr: "1 step(s) failed", wantOut: "host step not supported: enable-ip-forward"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			snap := snapshot.Snapshot{Networks: []snapshot.Network{{Name: "default", Autostart: true, Forward: snapshot.ForwardNAT}}}
			d := HostDeps{
				Snapshot: func(context.Context) (snapshot.Snapshot, []diagnose.Finding, error) {
					return snap, slices.Clone(tc.host.findings), nil
				},
				Steps: tc.host.steps(), Events: record(&out),
			}
			_, err := Host(context.Background(), d, nil, tc.dryRun)
			if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			if !slices.Equal(tc.host.done, tc.wantDone) {
				t.Errorf("done = %v, want %v", tc.host.done, tc.wantDone)
			}
			if !strings.Contains(out.String(), tc.wantOut) {
				t.Errorf("output lacks %q:\n%s", tc.wantOut, out.String())
			}
		})
	}
}

// TestGuestFixNothingToChangeWithErrors: a guest whose only error is its network's (a host-side
// cause) has nothing to change in the guest, and the fix says so with exit 1, not success.
func TestGuestFixNothingToChangeWithErrors(t *testing.T) {
	agent := &fakeAgent{checksOK: true}
	var out bytes.Buffer
	d := guestDeps(agent, func() []snapshot.Lease { return nil }, &out)
	d.Snapshot = func(context.Context) (snapshot.Snapshot, []diagnose.Finding, error) {
		s, _ := brokenGuestSnapshot()
		return s, []diagnose.Finding{{Code: diagnose.CodeNetworkInactive, Severity: diagnose.SeverityError, Network: "default", Subject: "network default"}}, nil
	}
	res, err := Guest(context.Background(), d, fixplan.GuestOptions{Domain: "vm1", RollbackTimeout: 10 * time.Second}, false)
	if !errors.Is(err, ErrFindingsRemain) || len(res.Remaining) != 1 || !strings.Contains(err.Error(), "network_inactive") {
		t.Fatalf("err = %v, remaining %v", err, res.Remaining)
	}
	if len(agent.calls) != 0 {
		t.Fatalf("agent called with nothing to change: %v", agent.calls)
	}
	if !strings.Contains(out.String(), "nothing to change in vm1") {
		t.Errorf("output:\n%s", out.String())
	}
}
