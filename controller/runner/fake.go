package runner

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
)

// Fake is a Runner for unit tests: it answers each argument vector with a canned response and
// records every call. An argv with no response fails like a program that is not installed.
type Fake struct {
	mu    sync.Mutex
	resp  map[string]FakeResponse
	calls [][]string
}

// FakeResponse is what Fake returns for one argv.
type FakeResponse struct {
	// Stdout returned.
	Stdout string
	// Stderr put into the *CommandError when ExitCode != 0.
	Stderr string
	// ExitCode; non-zero makes Run fail with a *CommandError.
	ExitCode int
}

// NewFake returns an empty Fake.
func NewFake() *Fake { return &Fake{resp: map[string]FakeResponse{}} }

func key(argv []string) string { return strings.Join(argv, "\x00") }

// Set registers the response for argv (name first).
func (f *Fake) Set(r FakeResponse, argv ...string) *Fake {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.resp[key(argv)] = r
	return f
}

// SetOutput registers a successful response printing stdout for argv.
func (f *Fake) SetOutput(stdout string, argv ...string) *Fake {
	return f.Set(FakeResponse{Stdout: stdout}, argv...)
}

// Calls returns every argv Run was called with, in order.
func (f *Fake) Calls() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([][]string, len(f.calls))
	copy(out, f.calls)
	return out
}

// Run answers from the registered responses.
func (f *Fake) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	argv := append([]string{name}, args...)
	f.mu.Lock()
	f.calls = append(f.calls, argv)
	r, ok := f.resp[key(argv)]
	f.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, &CommandError{Argv: argv, ExitCode: -1, Err: err}
	}
	if !ok {
		return nil, &CommandError{Argv: argv, ExitCode: -1,
			Err: fmt.Errorf("fake runner has no response: %w", exec.ErrNotFound)}
	}
	if r.ExitCode != 0 {
		return []byte(r.Stdout), &CommandError{Argv: argv, Stderr: r.Stderr, ExitCode: r.ExitCode,
			Err: fmt.Errorf("exit status %d", r.ExitCode)}
	}
	return []byte(r.Stdout), nil
}
