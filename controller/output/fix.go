package output

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/kvmnet/kvmnet/controller/diagnose"
	"github.com/kvmnet/kvmnet/controller/fix"
)

// FixPrinter prints the events of `guests fix` and `host fix` for people: the plan, the agent's
// changes, each host step with its commands, and the outcome. Waiting steps show as a spinner on a
// terminal and as one "... step" line otherwise (logs, CI). Every string is sanitised: plans and
// changes carry guest text.
type FixPrinter struct {
	w    io.Writer
	tty  bool
	mu   sync.Mutex
	cur  string
	stop chan struct{}
	done chan struct{}
}

// NewFixPrinter returns a printer writing to w; tty selects the spinner.
func NewFixPrinter(w io.Writer, tty bool) *FixPrinter { return &FixPrinter{w: w, tty: tty} }

// Event prints one event (fix.GuestDeps.Events, fix.HostDeps.Events).
func (p *FixPrinter) Event(e fix.Event) {
	switch e := e.(type) {
	case fix.Waiting:
		p.wait(Sanitize(e.What))
		return
	case fix.Waited:
		p.halt()
		if e.Outcome != "" {
			p.line(Sanitize(e.Outcome))
		}
		return
	}
	p.halt()
	switch e := e.(type) {
	case fix.Note:
		p.line(Sanitize(e.Text))
	case fix.GuestPlanned:
		pl := e.Plan
		p.line("plan for " + Sanitize(pl.Domain) + ":")
		for _, s := range pl.Steps {
			p.line(fmt.Sprintf("  - [%s] %s", Sanitize(string(s.Code)), Sanitize(s.Summary)))
		}
		for _, f := range pl.HostSide {
			p.line(fmt.Sprintf("  ! host-side cause, not fixed in the guest: [%s] %s -> run `kvmnetctl host fix`", Sanitize(string(f.Code)), Sanitize(f.Summary)))
		}
		for _, s := range pl.Skipped {
			p.line(fmt.Sprintf("  ~ left alone: [%s] %s", Sanitize(string(s.Finding.Code)), Sanitize(s.Reason)))
		}
	case fix.ChangesPreviewed:
		if len(e.Changes) == 0 {
			return
		}
		p.line("changes in " + Sanitize(e.Domain) + ":")
		for _, c := range e.Changes {
			p.line(fmt.Sprintf("  * %s %s: %s", Sanitize(c.GetKind()), Sanitize(c.GetTarget()), Sanitize(c.GetSummary())))
			for _, l := range strings.Split(strings.TrimRight(c.GetDiff(), "\n"), "\n") {
				if l != "" {
					p.line("      " + Sanitize(l))
				}
			}
		}
	case fix.HostStepPlanned:
		p.line(fmt.Sprintf("step %d/%d [%s]: %s", e.N, e.Of, Sanitize(joinCodes(e.Step.Codes)), Sanitize(e.Step.Summary)))
		for _, c := range e.Commands {
			p.line("    " + Sanitize(c))
		}
		if e.Step.Warning != "" {
			p.line("    warning: " + Sanitize(e.Step.Warning))
		}
		if e.Err != "" {
			p.line("    cannot do this step: " + Sanitize(e.Err))
		}
	case fix.HostStepSkipped:
		p.line("    skipped")
	case fix.HostStepDone:
		if e.Err != "" {
			p.line("    failed: " + Sanitize(e.Err))
		} else {
			p.line("    done")
		}
	case fix.ManualFinding:
		f := e.Finding
		p.line(fmt.Sprintf("manual: [%s] %s\n    %s", Sanitize(string(f.Code)), Sanitize(f.Summary), Sanitize(f.Fix)))
	case fix.GuestSideFindings:
		p.line(fmt.Sprintf("guest-side findings (%d): run `kvmnetctl guests fix VM` for the guests concerned", e.Count))
	case fix.StillReported:
		f := e.Finding
		p.line(fmt.Sprintf("still reported after the fix: [%s] %s: %s", Sanitize(string(f.Code)), Sanitize(f.Subject), Sanitize(f.Summary)))
	}
}

// Prompt ends any spinner and writes a question the user answers on the same line.
func (p *FixPrinter) Prompt(question string) {
	p.halt()
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "%s [y/N] ", Sanitize(question))
}

// Write prints lines from the CLI's own host adapters (commands as they run) between events.
func (p *FixPrinter) Write(b []byte) (int, error) {
	p.halt()
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := io.WriteString(p.w, Sanitize(strings.TrimSuffix(string(b), "\n"))+"\n"); err != nil {
		return 0, err
	}
	return len(b), nil
}

func (p *FixPrinter) line(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintln(p.w, s)
}

func (p *FixPrinter) wait(msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cur = msg
	if !p.tty {
		fmt.Fprintf(p.w, "... %s\n", msg)
		return
	}
	if p.stop == nil {
		p.stop, p.done = make(chan struct{}), make(chan struct{})
		go p.spin(p.stop, p.done)
	}
}

func (p *FixPrinter) halt() {
	p.mu.Lock()
	stop, done := p.stop, p.done
	p.stop, p.done = nil, nil
	p.mu.Unlock()
	if stop != nil {
		close(stop)
		<-done
		p.mu.Lock()
		fmt.Fprint(p.w, "\r\033[K")
		p.mu.Unlock()
	}
}

func (p *FixPrinter) spin(stop, done chan struct{}) {
	frames := `|/-\`
	t := time.NewTicker(120 * time.Millisecond)
	defer t.Stop()
	defer close(done)
	for i := 0; ; i++ {
		p.mu.Lock()
		fmt.Fprintf(p.w, "\r\033[K%c %s", frames[i%len(frames)], p.cur)
		p.mu.Unlock()
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

func joinCodes(cs []diagnose.Code) string {
	s := make([]string, len(cs))
	for i, c := range cs {
		s[i] = string(c)
	}
	return strings.Join(s, ",")
}
