package remote

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/kvmnet/kvmnet/controller/runner"
)

// MaxOutput bounds what a remote kvmnetctl may print (a report of a few hundred guests is well below).
const MaxOutput = 8 << 20

// sshFailed is ssh's own exit status when the connection or authentication failed.
const sshFailed = 255

// Client runs kvmnetctl on remote hosts through ssh.
type Client struct {
	// Runner runs ssh (controller/runner.Exec, or one that enters a network namespace).
	Runner runner.Runner
	// SSH is the ssh program (default "ssh").
	SSH string
	// ConfigFile is passed as `ssh -F` when set.
	ConfigFile string
	// Options are extra `-o KEY=VALUE` settings.
	Options []string
	// ConnectTimeout is ssh's ConnectTimeout (default 5 s).
	ConnectTimeout time.Duration
	// Kvmnetctl is the program run on the remote host (default "kvmnetctl").
	Kvmnetctl string
}

// Result is one remote run.
type Result struct {
	// Stdout of the remote kvmnetctl (at most MaxOutput bytes).
	Stdout []byte
	// ExitCode of the remote kvmnetctl (0 ok, 1 findings, 2 usage/connection).
	ExitCode int
	// Message is the last line the remote kvmnetctl wrote to stderr when it failed (its reason),
	// made printable.
	Message string
}

// ErrUnreachable marks a failure of ssh itself (connection, authentication, host key).
var ErrUnreachable = errors.New("ssh failed")

// ValidDestination checks an ssh destination: [user@]host, no leading '-', no whitespace or control
// characters (it must never be read as an option or split into words).
func ValidDestination(dest string) error {
	if dest == "" {
		return errors.New("empty ssh destination")
	}
	if strings.HasPrefix(dest, "-") {
		return fmt.Errorf("ssh destination %q starts with '-'", dest)
	}
	for _, r := range dest {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == '\'' || r == '"' || r == '\\' {
			return fmt.Errorf("ssh destination %q contains %q", dest, r)
		}
	}
	return nil
}

// Quote quotes one word for a POSIX shell: inside single quotes nothing is special, and a single
// quote itself becomes '\” (close, escaped quote, reopen).
func Quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Argv is the ssh argument vector that runs kvmnetctl with args on dest. ssh sends the words after
// the destination as one string to the remote shell, so each is quoted on its own.
func (c Client) Argv(dest string, args []string) []string {
	timeout := c.ConnectTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	argv := []string{"-n", "-T", "-o", "BatchMode=yes", "-o", "ConnectTimeout=" + strconv.Itoa(int(max(timeout.Seconds(), 1)))}
	if c.ConfigFile != "" {
		argv = append(argv, "-F", c.ConfigFile)
	}
	for _, o := range c.Options {
		argv = append(argv, "-o", o)
	}
	prog := c.Kvmnetctl
	if prog == "" {
		prog = "kvmnetctl"
	}
	argv = append(argv, "--", dest, Quote(prog))
	for _, a := range args {
		argv = append(argv, Quote(a))
	}
	return argv
}

// Run runs kvmnetctl args on dest. A remote exit status 1 or 2 is a Result, not an error (kvmnetctl
// still printed its report); ssh's own failure (status 255) is ErrUnreachable with ssh's message.
func (c Client) Run(ctx context.Context, dest string, args []string) (Result, error) {
	if err := ValidDestination(dest); err != nil {
		return Result{}, err
	}
	ssh := c.SSH
	if ssh == "" {
		ssh = "ssh"
	}
	out, err := c.Runner.Run(ctx, ssh, c.Argv(dest, args)...)
	if len(out) > MaxOutput {
		return Result{}, fmt.Errorf("%s: kvmnetctl printed more than %d bytes", dest, MaxOutput)
	}
	if err == nil {
		return Result{Stdout: out}, nil
	}
	var ce *runner.CommandError
	if !errors.As(err, &ce) {
		return Result{}, fmt.Errorf("%s: %w", dest, err)
	}
	switch {
	case ctx.Err() != nil:
		return Result{}, fmt.Errorf("%s: %w: no answer in time (%w)", dest, ErrUnreachable, ctx.Err())
	case ce.ExitCode == sshFailed || ce.ExitCode < 0:
		return Result{}, fmt.Errorf("%s: %w: %s", dest, ErrUnreachable, firstLine(ce.Stderr, ce.Err))
	case ce.ExitCode == 127:
		return Result{}, fmt.Errorf("%s: kvmnetctl not found on the remote host (install it there, or set --ssh-kvmnetctl): %s", dest, firstLine(ce.Stderr, ce.Err))
	}
	return Result{Stdout: out, ExitCode: ce.ExitCode, Message: firstLine(ce.Stderr, ce.Err)}, nil
}

// firstLine is the last non-empty line of stderr (ssh prints warnings first), else err, with
// control characters replaced: it comes from another host and goes to a terminal.
func firstLine(stderr string, err error) string {
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			return Printable(l, 300)
		}
	}
	return Printable(err.Error(), 300)
}

// Printable replaces control characters and invalid UTF-8 in remote text and cuts it to n runes.
func Printable(s string, n int) string {
	s = strings.ToValidUTF8(s, "?")
	var b strings.Builder
	i := 0
	for _, r := range s {
		if i == n {
			b.WriteString("...")
			break
		}
		if unicode.IsControl(r) && r != '\t' {
			r = '?'
		}
		b.WriteRune(r)
		i++
	}
	return b.String()
}
