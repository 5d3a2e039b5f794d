package fix

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/kvmnet/kvmnet/controller/diagnose"
	"github.com/kvmnet/kvmnet/controller/fixplan"
)

// HostActions carries out host steps. Commands returns the exact commands (or rules / XML changes)
// a step amounts to, for display before anything runs; Do makes the change.
type HostActions interface {
	Commands(ctx context.Context, st fixplan.HostStep) ([]string, error)
	Do(ctx context.Context, st fixplan.HostStep) error
}

// HostDeps are the adapters a host fix uses.
type HostDeps struct {
	// Snapshot collects and diagnoses (called before, and again after, the changes).
	Snapshot Snapshotter
	// Actions carries out the steps.
	Actions HostActions
	// Confirm asks the user before each step; nil means --yes.
	Confirm func(question string) (bool, error)
	// Out receives the plan, commands and outcome.
	Out io.Writer
	// Progress shows waiting steps; nil means plain lines on Out.
	Progress *Progress
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
	if d.Progress == nil {
		d.Progress = NewProgress(d.Out, false)
	}
	d.Progress.Step("reading host state")
	snap, findings, err := d.Snapshot(ctx)
	d.Progress.Done("")
	if err != nil {
		return res, err
	}
	plan, err := fixplan.HostWith(snap, findings, only, d.Plan)
	if err != nil {
		return res, err
	}
	res.Plan = plan
	if len(plan.Steps) == 0 {
		fmt.Fprintln(d.Out, "no host change needed")
	}
	failed := 0
	for i, st := range plan.Steps {
		cmds, err := d.Actions.Commands(ctx, st)
		r := HostStepResult{Step: st, Commands: cmds}
		fmt.Fprintf(d.Out, "step %d/%d [%s]: %s\n", i+1, len(plan.Steps), joinCodes(st.Codes), st.Summary)
		for _, c := range cmds {
			fmt.Fprintf(d.Out, "    %s\n", c)
		}
		if st.Warning != "" {
			fmt.Fprintf(d.Out, "    warning: %s\n", st.Warning)
		}
		if err != nil {
			r.Error = err.Error()
			fmt.Fprintf(d.Out, "    cannot do this step: %v\n", err)
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
				fmt.Fprintln(d.Out, "    skipped")
				continue
			}
		}
		d.Progress.Step("%s", st.Summary)
		if err := d.Actions.Do(ctx, st); err != nil {
			d.Progress.Done("    failed: %v", err)
			r.Error = err.Error()
			failed++
		} else {
			d.Progress.Done("    done")
			r.Done = true
		}
		res.Steps = append(res.Steps, r)
	}
	for _, f := range plan.Manual {
		fmt.Fprintf(d.Out, "manual: [%s] %s\n    %s\n", f.Code, f.Summary, f.Fix)
	}
	if len(plan.GuestSide) > 0 {
		fmt.Fprintf(d.Out, "guest-side findings (%d): run `kvmnetctl guests fix VM` for the guests concerned\n", len(plan.GuestSide))
	}
	if dryRun {
		fmt.Fprintln(d.Out, "dry run: nothing was changed")
		return res, nil
	}

	ran := slices.ContainsFunc(res.Steps, func(r HostStepResult) bool { return r.Done })
	if ran {
		d.Progress.Step("checking again")
		_, after, err := d.Snapshot(ctx)
		d.Progress.Done("")
		if err != nil {
			return res, fmt.Errorf("re-check after the fix: %w", err)
		}
		res.Remaining = remaining(res.Steps, after)
		for _, f := range res.Remaining {
			fmt.Fprintf(d.Out, "still reported after the fix: [%s] %s: %s\n", f.Code, f.Subject, f.Summary)
		}
		if len(res.Remaining) == 0 {
			fmt.Fprintln(d.Out, "re-checked: every finding the steps addressed is gone")
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

func joinCodes(cs []diagnose.Code) string {
	s := make([]string, len(cs))
	for i, c := range cs {
		s[i] = string(c)
	}
	return strings.Join(s, ",")
}
