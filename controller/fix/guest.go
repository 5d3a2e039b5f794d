package fix

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kvmnet/kvmnet/controller/diagnose"
	"github.com/kvmnet/kvmnet/controller/fixplan"
	"github.com/kvmnet/kvmnet/controller/snapshot"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// Agent is what a guest fix needs from a guest's agent (*agentclient.Client satisfies it).
type Agent interface {
	kvmnetv1.AgentClient
	io.Closer
}

// Snapshotter collects the host and its guests and diagnoses them.
type Snapshotter func(ctx context.Context) (snapshot.Snapshot, []diagnose.Finding, error)

// GuestDeps are the adapters a guest fix uses.
type GuestDeps struct {
	// Snapshot collects and diagnoses (the agent connection it used must be closed when it returns:
	// a virtio-serial channel serves one client at a time).
	Snapshot Snapshotter
	// DialAgent connects to a guest's agent.
	DialAgent func(ctx context.Context, g snapshot.Guest) (Agent, error)
	// Leases returns the current DHCP leases of a libvirt network.
	Leases func(ctx context.Context, network string) ([]snapshot.Lease, error)
	// Neighbors returns the neighbour entries of a host bridge (bridged networks); may be nil.
	Neighbors func(ctx context.Context, bridge string) ([]snapshot.Neighbor, error)
	// Confirm asks the user; nil means --yes.
	Confirm func(question string) (bool, error)
	// Events receives the plan, the agent's changes, waiting steps and the outcome, for the CLI
	// to print; nil discards them.
	Events func(Event)
	// PollInterval between verification attempts (0 = 2 s).
	PollInterval time.Duration
}

// GuestResult is the outcome of a guest fix.
type GuestResult struct {
	// Plan that was (or would be) applied.
	Plan fixplan.GuestPlan `json:"plan"`
	// Preview is the agent's dry-run answer (the real diff computed in the guest).
	Preview *kvmnetv1.ApplyResponse `json:"preview,omitempty"`
	// Applied is the agent's Apply answer.
	Applied *kvmnetv1.ApplyResponse `json:"applied,omitempty"`
	// Confirmed is true when the changes were verified and kept.
	Confirmed bool `json:"confirmed"`
	// RolledBack is true when the changes were undone.
	RolledBack bool `json:"rolled_back"`
	// Failures say which verification failed (when RolledBack).
	Failures []string `json:"failures,omitempty"`
	// Declined is true when the user answered no.
	Declined bool `json:"declined,omitempty"`
	// Remaining are the error-level findings still reported for the guest (its own, on the NIC
	// fixed, and its networks') after the fix ran or found nothing to change: the command then
	// exits 1.
	Remaining []diagnose.Finding `json:"remaining,omitempty"`
}

// ErrFindingsRemain is returned (wrapped) when error-level findings remain for the guest after
// the fix: "nothing to change" with errors left is not success.
var ErrFindingsRemain = errors.New("error-level findings remain")

// ErrVerificationFailed is returned (wrapped) when a fix was applied, did not verify, and was rolled
// back.
var ErrVerificationFailed = errors.New("fix did not verify and was rolled back")

// Guest runs `kvmnetctl guests fix`: plan, preview (agent dry run), confirm, apply under a checkpoint,
// verify from the host side, then Confirm — or Rollback with the reasons.
func Guest(ctx context.Context, d GuestDeps, opts fixplan.GuestOptions, dryRun bool) (GuestResult, error) {
	var res GuestResult
	ev := emitter(d.Events)
	ev.emit(Waiting{What: "reading host state and the agent of " + opts.Domain})
	snap, findings, err := d.Snapshot(ctx)
	if err != nil {
		ev.emit(Waited{})
		return res, err
	}
	plan, err := fixplan.Guest(snap, findings, opts)
	ev.emit(Waited{})
	if err != nil {
		return res, err
	}
	res.Plan = plan
	ev.emit(GuestPlanned{Plan: plan})
	if plan.Empty() {
		ev.emit(Note{Text: "nothing to change in " + plan.Domain})
		return remain(ev, &res, snap, findings, opts)
	}
	g, _ := snap.FindGuest(plan.Domain)
	agent, err := d.DialAgent(ctx, g)
	if err != nil {
		return res, fmt.Errorf("connect to the agent of %s: %w", plan.Domain, err)
	}
	defer agent.Close()

	preview := proto(plan.Request)
	preview.DryRun = true
	res.Preview, err = agent.Apply(ctx, preview)
	if err != nil {
		return res, fmt.Errorf("dry run in %s: %w", plan.Domain, err)
	}
	ev.emit(ChangesPreviewed{Domain: plan.Domain, Changes: res.Preview.GetChanges()})
	if res.Preview.GetNoop() {
		ev.emit(Note{Text: "the agent reports nothing to change in " + plan.Domain})
		return remain(ev, &res, snap, findings, opts)
	}
	if dryRun {
		ev.emit(Note{Text: "dry run: nothing was changed"})
		return res, nil
	}
	if d.Confirm != nil {
		ok, err := d.Confirm(fmt.Sprintf("Apply these changes to %s (rolled back by itself after %ds unless verified)?",
			plan.Domain, plan.Request.GetRollbackTimeoutSeconds()))
		if err != nil {
			return res, err
		}
		if !ok {
			res.Declined = true
			ev.emit(Note{Text: "declined: nothing was changed"})
			return res, nil
		}
	}

	ev.emit(Waiting{What: fmt.Sprintf("applying %d change(s) in %s", len(res.Preview.GetChanges()), plan.Domain)})
	// The agent waits for an address inside Apply: never let a caller without a deadline fall back
	// to the client's short default and cut that wait off.
	actx, cancel := ctx, context.CancelFunc(func() {})
	if _, ok := ctx.Deadline(); !ok {
		actx, cancel = context.WithTimeout(ctx, time.Duration(plan.Request.GetRollbackTimeoutSeconds())*time.Second+time.Minute)
	}
	res.Applied, err = agent.Apply(actx, proto(plan.Request))
	cancel()
	if err != nil {
		ev.emit(Waited{})
		if status.Code(err) == codes.Aborted {
			// The agent's Apply failed part-way and the agent has already rolled its checkpoint back.
			res.RolledBack = true
			ev.emit(Note{Text: "apply failed in " + plan.Domain + " and the agent rolled it back"})
			return res, fmt.Errorf("apply in %s: %w", plan.Domain, err)
		}
		return res, fmt.Errorf("apply in %s: %w (the guest's checkpoint rolls back by itself)", plan.Domain, err)
	}
	cp := res.Applied.GetCheckpointId()
	ev.emit(Waited{Outcome: fmt.Sprintf("applied under checkpoint %s (rollback at %s)", cp,
		res.Applied.GetRollbackDeadline().AsTime().Local().Format(time.TimeOnly))})
	if cp == "" {
		ev.emit(Note{Text: "nothing changed"})
		return res, nil
	}

	// Leave a margin before the guest's own rollback so Confirm never races it.
	budget := time.Duration(plan.Request.GetRollbackTimeoutSeconds())*time.Second*8/10 - 2*time.Second
	failures := verify(ctx, d, snap, plan, agent, budget)
	if len(failures) == 0 {
		if _, err := agent.Confirm(ctx, &kvmnetv1.ConfirmRequest{CheckpointId: cp}); err != nil {
			return res, fmt.Errorf("confirm checkpoint %s in %s: %w (the guest rolls back by itself at the deadline)", cp, plan.Domain, err)
		}
		res.Confirmed = true
		ev.emit(Note{Text: "verified and confirmed: " + plan.Domain + " is fixed"})
		// A virtio-serial channel serves one client at a time: hang up before collecting again.
		_ = agent.Close()
		ev.emit(Waiting{What: "checking " + plan.Domain + " again"})
		after, afterFindings, err := d.Snapshot(ctx)
		ev.emit(Waited{})
		if err != nil {
			return res, fmt.Errorf("re-check %s after the fix: %w", plan.Domain, err)
		}
		return remain(ev, &res, after, afterFindings, opts)
	}
	res.Failures = failures
	rb, err := agent.Rollback(ctx, &kvmnetv1.RollbackRequest{CheckpointId: cp})
	if err != nil {
		return res, fmt.Errorf("%w: %s; explicit rollback failed (%v): the guest rolls back by itself at the deadline",
			ErrVerificationFailed, strings.Join(failures, "; "), err)
	}
	res.RolledBack = true
	ev.emit(Note{Text: fmt.Sprintf("verification failed, %s rolled back (restored: %s)", plan.Domain, strings.Join(rb.GetRestored(), ", "))})
	return res, fmt.Errorf("%w: %s", ErrVerificationFailed, strings.Join(failures, "; "))
}

// remain records the error-level findings left for the guest and fails when there are any.
func remain(ev emitter, res *GuestResult, snap snapshot.Snapshot, findings []diagnose.Finding, opts fixplan.GuestOptions) (GuestResult, error) {
	res.Remaining = errorsFor(snap, findings, opts)
	if len(res.Remaining) == 0 {
		return *res, nil
	}
	codes := make([]string, 0, len(res.Remaining))
	for _, f := range res.Remaining {
		ev.emit(StillReported{Finding: f})
		codes = append(codes, string(f.Code))
	}
	return *res, fmt.Errorf("%w for %s: %s (see kvmnetctl guests status %s)", ErrFindingsRemain, opts.Domain, strings.Join(codes, ", "), opts.Domain)
}

// errorsFor are the error-level findings that concern the guest: its own (on the NIC asked for,
// or guest-wide), and those of the networks its NICs are on.
func errorsFor(snap snapshot.Snapshot, findings []diagnose.Finding, opts fixplan.GuestOptions) []diagnose.Finding {
	dom, _ := snap.FindDomain(opts.Domain)
	nets := map[string]bool{}
	for _, n := range dom.NICs {
		if opts.MAC == "" || n.MAC == snapshot.ParseMAC(opts.MAC) {
			nets[snap.Networks.NameOf(n)] = true
		}
	}
	var out []diagnose.Finding
	for _, f := range findings {
		if f.Severity != diagnose.SeverityError {
			continue
		}
		own := f.Domain == opts.Domain && (opts.MAC == "" || f.MAC == "" || f.MAC == snapshot.ParseMAC(opts.MAC))
		network := f.Domain == "" && f.Network != "" && nets[f.Network]
		if own || network {
			out = append(out, f)
		}
	}
	return out
}

// verify polls until every lease/neighbour appears and every check passes, or budget runs out; it
// returns what still failed.
func verify(ctx context.Context, d GuestDeps, snap snapshot.Snapshot, plan fixplan.GuestPlan, agent Agent, budget time.Duration) []string {
	if budget < 5*time.Second {
		budget = 5 * time.Second
	}
	interval := d.PollInterval
	if interval == 0 {
		interval = 2 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	dom, _ := snap.FindDomain(plan.Domain)
	ev := emitter(d.Events)
	var failures, last []string
	for {
		failures = nil
		for _, mac := range plan.Verify.LeaseMACs {
			ev.emit(Waiting{What: "waiting for a DHCP lease for " + mac.String()})
			nic, _ := dom.NIC(mac)
			if err := hasLease(ctx, d, snap.Networks.NameOf(nic), mac); err != nil {
				failures = append(failures, err.Error())
			}
		}
		for _, mac := range plan.Verify.NeighborMACs {
			ev.emit(Waiting{What: "waiting for " + mac.String() + " in the bridge's neighbour table"})
			nic, _ := dom.NIC(mac)
			if err := hasNeighbor(ctx, d, nic.Bridge, mac); err != nil {
				failures = append(failures, err.Error())
			}
		}
		if len(failures) == 0 && len(plan.Verify.Checks) > 0 {
			ev.emit(Waiting{What: fmt.Sprintf("running %d check(s) in %s", len(plan.Verify.Checks), plan.Domain)})
			r, err := agent.RunChecks(ctx, &kvmnetv1.RunChecksRequest{Checks: plan.Verify.Checks})
			if err != nil {
				failures = append(failures, "run checks: "+err.Error())
			}
			for _, c := range r.GetResults() {
				if !c.GetOk() {
					failures = append(failures, fmt.Sprintf("check %s (%s %s) failed: %s", c.GetCheck().GetName(),
						strings.TrimPrefix(c.GetCheck().GetKind().String(), "CHECK_KIND_"), checkTarget(c.GetCheck()), c.GetError()))
				}
			}
		}
		if len(failures) == 0 {
			ev.emit(Waited{Outcome: "verified: lease and checks pass"})
			return nil
		}
		if ctx.Err() != nil && len(last) > 0 {
			// The budget ran out during this round, so its errors may only say "deadline exceeded":
			// the previous, complete round says what actually failed.
			failures = last
		}
		select {
		case <-ctx.Done():
			ev.emit(Waited{Outcome: fmt.Sprintf("verification gave up after %s", budget)})
			return slices.Clone(failures)
		case <-time.After(interval):
		}
		last = failures
	}
}

func hasLease(ctx context.Context, d GuestDeps, network string, mac snapshot.MAC) error {
	leases, err := d.Leases(ctx, network)
	if err != nil {
		return fmt.Errorf("read leases of network %q: %w", network, err)
	}
	for _, l := range leases {
		if l.MAC == mac && l.Family != 6 {
			return nil
		}
	}
	return fmt.Errorf("no DHCP lease for %s on network %s", mac, network)
}

func hasNeighbor(ctx context.Context, d GuestDeps, bridge string, mac snapshot.MAC) error {
	if d.Neighbors == nil {
		return nil
	}
	ns, err := d.Neighbors(ctx, bridge)
	if err != nil {
		return fmt.Errorf("read neighbours of bridge %s: %w", bridge, err)
	}
	for _, n := range ns {
		if n.MAC == mac && n.State != "failed" && n.State != "incomplete" {
			return nil
		}
	}
	return fmt.Errorf("no neighbour entry for %s on bridge %s", mac, bridge)
}

// proto returns a copy of the request (the plan stays unchanged for the JSON result).
func proto(r *kvmnetv1.ApplyRequest) *kvmnetv1.ApplyRequest {
	return &kvmnetv1.ApplyRequest{Actions: r.GetActions(), RollbackTimeoutSeconds: r.GetRollbackTimeoutSeconds()}
}

// checkTarget names a check's target for messages ("default gateway" for a ping without one).
func checkTarget(c *kvmnetv1.Check) string {
	if c.GetTarget() == "" && c.GetKind() == kvmnetv1.CheckKind_CHECK_KIND_PING {
		return "default gateway"
	}
	return c.GetTarget()
}
