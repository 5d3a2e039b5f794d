package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// Runner runs one command given as an argument vector and returns its standard output.
// A non-nil error is a *CommandError (or wraps one) that names the command and holds its stderr.
type Runner interface {
	Run(ctx context.Context, name string, args ...string) (stdout []byte, err error)
}

// CommandError is a failed command: it could not start, or it exited non-zero.
type CommandError struct {
	// Argv is the full command as run (with any namespace prefix).
	Argv []string
	// Stderr is what the command wrote to standard error (trimmed).
	Stderr string
	// ExitCode is the exit status, -1 when the command did not run to an exit.
	ExitCode int
	// Err is the underlying error (exec.ErrNotFound, *exec.ExitError, context errors).
	Err error
}

// Error renders "cmd args: err: stderr".
func (e *CommandError) Error() string {
	var b strings.Builder
	b.WriteString(Quote(e.Argv))
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	if e.Stderr != "" {
		b.WriteString(": ")
		b.WriteString(e.Stderr)
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *CommandError) Unwrap() error { return e.Err }

// IsNotFound reports whether err says the program does not exist (on PATH, or inside the namespace).
func IsNotFound(err error) bool {
	if errors.Is(err, exec.ErrNotFound) {
		return true
	}
	var ce *CommandError
	if errors.As(err, &ce) {
		// nsenter and `ip netns exec` report a missing program themselves, with status 127 / 255.
		if ce.ExitCode == 127 || strings.Contains(ce.Stderr, "No such file or directory") &&
			(strings.Contains(ce.Stderr, "exec of") || strings.Contains(ce.Stderr, "failed to execute")) {
			return true
		}
	}
	return false
}

// ExitCode returns the command's exit status from err, or -1 when err is not a finished command.
func ExitCode(err error) int {
	var ce *CommandError
	if errors.As(err, &ce) {
		return ce.ExitCode
	}
	return -1
}

// Quote renders argv as a shell-readable line, quoting words that need it. It is for display only:
// nothing in kvmnet ever hands this string to a shell.
func Quote(argv []string) string {
	parts := make([]string, len(argv))
	for i, a := range argv {
		parts[i] = quoteWord(a)
	}
	return strings.Join(parts, " ")
}

func quoteWord(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:,=+@%", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Exec runs commands for real with exec.CommandContext. The zero value runs in the caller's own
// namespaces; use NewExec with options for a namespace prefix.
type Exec struct {
	prefix []string
	env    []string
}

// Option configures Exec.
type Option func(*Exec)

// InNetns runs every command inside the named network namespace (`ip netns exec NAME ...`).
func InNetns(name string) Option {
	return func(e *Exec) { e.prefix = []string{"ip", "netns", "exec", name} }
}

// InNamespacesOf runs every command inside the mount and network namespaces of process pid
// (`nsenter -t PID -m -n -- ...`): the files, pid files and firewall that process sees.
func InNamespacesOf(pid int) Option {
	return func(e *Exec) { e.prefix = []string{"nsenter", "-t", strconv.Itoa(pid), "-m", "-n", "--"} }
}

// WithEnv adds KEY=VALUE entries to the environment of every command (on top of the caller's).
func WithEnv(kv ...string) Option {
	return func(e *Exec) { e.env = append(e.env, kv...) }
}

// NewExec returns a real runner.
func NewExec(opts ...Option) *Exec {
	e := &Exec{}
	for _, o := range opts {
		o(e)
	}
	return e
}

// Argv returns the full argument vector Run would execute for name and args.
func (e *Exec) Argv(name string, args ...string) []string {
	argv := make([]string, 0, len(e.prefix)+1+len(args))
	argv = append(argv, e.prefix...)
	argv = append(argv, name)
	return append(argv, args...)
}

// Run executes the command and returns its stdout; on failure the error is a *CommandError.
func (e *Exec) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	argv := e.Argv(name, args...)
	if len(e.prefix) > 0 {
		// Fail the same way with or without a prefix when the program is not installed at all.
		if _, err := exec.LookPath(name); err != nil {
			return nil, &CommandError{Argv: argv, ExitCode: -1, Err: err}
		}
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	if len(e.env) > 0 {
		cmd.Env = append(cmd.Environ(), e.env...)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		code := -1
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return stdout.Bytes(), &CommandError{Argv: argv, Stderr: strings.TrimSpace(stderr.String()), ExitCode: code, Err: err}
	}
	return stdout.Bytes(), nil
}
