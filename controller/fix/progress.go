package fix

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// Progress shows what a fix is waiting for: a spinner with the current step on a terminal, one plain
// line per step otherwise (logs, CI).
type Progress struct {
	out  io.Writer
	tty  bool
	mu   sync.Mutex
	cur  string
	stop chan struct{}
	done chan struct{}
}

// NewProgress returns a Progress writing to out; tty selects the spinner.
func NewProgress(out io.Writer, tty bool) *Progress { return &Progress{out: out, tty: tty} }

// Step announces the current step.
func (p *Progress) Step(format string, args ...any) {
	if p == nil {
		return
	}
	msg := fmt.Sprintf(format, args...)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cur = msg
	if !p.tty {
		fmt.Fprintf(p.out, "... %s\n", msg)
		return
	}
	if p.stop == nil {
		p.stop, p.done = make(chan struct{}), make(chan struct{})
		go p.spin()
	}
}

// Done ends the current step with a final line (none when format is empty).
func (p *Progress) Done(format string, args ...any) {
	if p == nil {
		return
	}
	p.halt()
	if format != "" {
		fmt.Fprintf(p.out, format+"\n", args...)
	}
}

func (p *Progress) halt() {
	p.mu.Lock()
	stop, done := p.stop, p.done
	p.stop, p.done = nil, nil
	p.mu.Unlock()
	if stop != nil {
		close(stop)
		<-done
		fmt.Fprint(p.out, "\r\033[K")
	}
}

func (p *Progress) spin() {
	frames := `|/-\`
	t := time.NewTicker(120 * time.Millisecond)
	defer t.Stop()
	p.mu.Lock()
	stop, done := p.stop, p.done
	p.mu.Unlock()
	defer close(done)
	for i := 0; ; i++ {
		p.mu.Lock()
		fmt.Fprintf(p.out, "\r\033[K%c %s", frames[i%len(frames)], p.cur)
		p.mu.Unlock()
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}
