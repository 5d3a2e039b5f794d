package fix

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/kvmnet/kvmnet/controller/diagnose"
	"github.com/kvmnet/kvmnet/controller/fixplan"
)

// HostChange is what one host step amounts to: the exact commands (or rules, XML changes) shown
// before anything runs, and the action that makes them. They are computed together, so what runs
// is what was shown.
type HostChange struct {
	// Commands shown to the user.
	Commands []string
	// Do makes the change.
	Do func(ctx context.Context) error
}

// HostStepFunc computes the change of one step.
type HostStepFunc func(ctx context.Context, st fixplan.HostStep) (HostChange, error)

// HostSteps has one entry per step kind the host side carries out (controller/fix/hoststeps
// holds the real one).
type HostSteps map[fixplan.HostStepKind]HostStepFunc

// ErrUnsupportedStep is returned (wrapped) for a step whose kind HostSteps has no entry for.
var ErrUnsupportedStep = errors.New("host step not supported")

// change computes a step's change from its entry.
func (t HostSteps) change(ctx context.Context, st fixplan.HostStep) (HostChange, error) {
	f, ok := t[st.Kind]
	if !ok {
		return HostChange{}, fmt.Errorf("%w: %s", ErrUnsupportedStep, st.Kind)
	}
	return f(ctx, st)
}

// HostDeps are the adapters a host fix uses.
type HostDeps struct {
	// Snapshot collects and diagnoses (called before, and again after, the changes).
	Snapshot Snapshotter
	// Steps carries out the steps, one entry per kind.
	Steps HostSteps
	// Confirm asks the user before each step; nil means --yes.
	Confirm func(question string) (bool, error)
	// Events receives each step with its commands, waiting steps and the outcome, for the CLI to
	// print; nil discards them.
	Events func(Event)
	// Plan chooses between repairs of the same finding (e.g. --bridge-nf-off).
	Plan fixplan.HostOptions
}

// HostStepResult is what happened to one step.
type HostStepResult struct {
	// Step planned.
	Step fixplan.HostStep `json:"step"`
	// Commands it amounts to.
	Commands []string `json:"commands"`
	// Done is true when it ran without error.
	Done bool `json:"done"`
	// Skipped is true when the user declined it (or dry run).
	Skipped bool `json:"skipped,omitempty"`
	// Error from running it.
	Error string `json:"error,omitempty"`
}

// HostResult is the outcome of a host fix.
type HostResult struct {
	// Plan built from the findings.
	Plan fixplan.HostPlan `json:"plan"`
	// Steps, one per plan step.
	Steps []HostStepResult `json:"steps"`
	// Remaining are the findings still reported after the changes that a step was meant to clear.
	Remaining []diagnose.Finding `json:"remaining,omitempty"`
	// DryRun is true when nothing was changed on purpose.
	DryRun bool `json:"dry_run"`
}

// Host runs `kvmnetctl host fix`: plan from the findings, print each step's exact commands, confirm,
// run, then collect again and check that the findings the steps answer are gone.
func Host(ctx context.Context, d HostDeps, only []diagnose.Code, dryRun bool) (HostResult, error) {
	res := HostResult{DryRun: dryRun}
	ev := emitter(d.Events)
	ev.emit(Waiting{What: "reading host state"})
	snap, findings, err := d.Snapshot(ctx)
	ev.emit(Waited{})
	if err != nil {
		return res, err
	}
	plan, err := fixplan.HostWith(snap, findings, only, d.Plan)
	if err != nil {
		return res, err
	}
	res.Plan = plan
	if len(plan.Steps) == 0 {
		ev.emit(Note{Text: "no host change needed"})
	}
	failed := 0
	for i, st := range plan.Steps {
		ch, err := d.Steps.change(ctx, st)
		r := HostStepResult{Step: st, Commands: ch.Commands}
		planned := HostStepPlanned{N: i + 1, Of: len(plan.Steps), Step: st, Commands: ch.Commands}
		if err != nil {
			planned.Err = err.Error()
		}
		ev.emit(planned)
		if err != nil {
			r.Error = err.Error()
			failed++
			res.Steps = append(res.Steps, r)
			continue
		}
		if dryRun {
			r.Skipped = true
			res.Steps = append(res.Steps, r)
			continue
		}
		if d.Confirm != nil {
			ok, err := d.Confirm("Run this step?")
			if err != nil {
				return res, err
			}
			if !ok {
				r.Skipped = true
				res.Steps = append(res.Steps, r)
				ev.emit(HostStepSkipped{})
				continue
			}
		}
		ev.emit(Waiting{What: st.Summary})
		if err := ch.Do(ctx); err != nil {
			ev.emit(HostStepDone{Err: err.Error()})
			r.Error = err.Error()
			failed++
		} else {
			ev.emit(HostStepDone{})
			r.Done = true
		}
		res.Steps = append(res.Steps, r)
	}
	for _, f := range plan.Manual {
		ev.emit(ManualFinding{Finding: f})
	}
	if len(plan.GuestSide) > 0 {
		ev.emit(GuestSideFindings{Count: len(plan.GuestSide)})
	}
	if dryRun {
		ev.emit(Note{Text: "dry run: nothing was changed"})
		return res, nil
	}

	ran := slices.ContainsFunc(res.Steps, func(r HostStepResult) bool { return r.Done })
	if ran {
		ev.emit(Waiting{What: "checking again"})
		_, after, err := d.Snapshot(ctx)
		ev.emit(Waited{})
		if err != nil {
			return res, fmt.Errorf("re-check after the fix: %w", err)
		}
		res.Remaining = remaining(res.Steps, after)
		for _, f := range res.Remaining {
			ev.emit(StillReported{Finding: f})
		}
		if len(res.Remaining) == 0 {
			ev.emit(Note{Text: "re-checked: every finding the steps addressed is gone"})
		}
	}
	if failed > 0 || len(res.Remaining) > 0 {
		return res, fmt.Errorf("host fix incomplete: %d step(s) failed, %d finding(s) remain", failed, len(res.Remaining))
	}
	return res, nil
}

// remaining returns the findings, among those answered by steps that ran, still present afterwards.
func remaining(steps []HostStepResult, after []diagnose.Finding) []diagnose.Finding {
	var out []diagnose.Finding
	for _, f := range after {
		for _, r := range steps {
			if r.Done && slices.Contains(r.Step.Codes, f.Code) &&
				(r.Step.Network == "" || f.Network == "" || f.Network == r.Step.Network) &&
				(r.Step.Domain == "" || f.Domain == r.Step.Domain) {
				out = append(out, f)
				break
			}
		}
	}
	return out
}
