package fix

import (
	"github.com/kvmnet/kvmnet/controller/diagnose"
	"github.com/kvmnet/kvmnet/controller/fixplan"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// Event is one thing a fix reports while it runs. fix never prints: the CLI renders events
// (controller/output), so the same run can show a spinner on a terminal, plain lines in a log, or
// nothing at all next to -o json.
type Event interface{ fixEvent() }

// Waiting says a step that may take a while has started ("reading host state").
type Waiting struct {
	// What is being waited for.
	What string
}

// Waited ends the current Waiting step; Outcome is a line worth keeping, or "".
type Waited struct {
	// Outcome of the step ("applied under checkpoint ..."), "" when there is nothing to say.
	Outcome string
}

// Note is one line of outcome ("dry run: nothing was changed").
type Note struct {
	// Text of the line.
	Text string
}

// GuestPlanned is the plan for a guest, reported before its agent is asked for anything.
type GuestPlanned struct {
	// Plan built from the findings.
	Plan fixplan.GuestPlan
}

// ChangesPreviewed carries the changes the agent computed in its dry run, shown before the user is
// asked to apply them.
type ChangesPreviewed struct {
	// Domain the changes are for.
	Domain string
	// Changes as the agent reported them (guest text: escaped by the renderer).
	Changes []*kvmnetv1.Change
}

// HostStepPlanned is step N of Of with the exact commands it amounts to.
type HostStepPlanned struct {
	// N counts from 1.
	N, Of int
	// Step planned.
	Step fixplan.HostStep
	// Commands the step amounts to.
	Commands []string
	// Err says why the commands could not be computed ("" when they were): the step is not done.
	Err string
}

// HostStepSkipped says the user declined the current host step.
type HostStepSkipped struct{}

// HostStepDone ends the current host step: Err is "" when it ran without error.
type HostStepDone struct {
	// Err from running the step.
	Err string
}

// ManualFinding is a host finding no step can fix: the user must act.
type ManualFinding struct {
	// Finding with its fix text.
	Finding diagnose.Finding
}

// GuestSideFindings counts findings a host fix leaves to `guests fix`.
type GuestSideFindings struct {
	// Count of such findings.
	Count int
}

// StillReported is a finding a step was meant to clear, seen again after the step ran.
type StillReported struct {
	// Finding as collected after the fix.
	Finding diagnose.Finding
}

func (Waiting) fixEvent()           {}
func (Waited) fixEvent()            {}
func (Note) fixEvent()              {}
func (GuestPlanned) fixEvent()      {}
func (ChangesPreviewed) fixEvent()  {}
func (HostStepPlanned) fixEvent()   {}
func (HostStepSkipped) fixEvent()   {}
func (HostStepDone) fixEvent()      {}
func (ManualFinding) fixEvent()     {}
func (GuestSideFindings) fixEvent() {}
func (StillReported) fixEvent()     {}

// emitter sends events to a sink that may be nil.
type emitter func(Event)

func (e emitter) emit(ev Event) {
	if e != nil {
		e(ev)
	}
}
