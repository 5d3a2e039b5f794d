package qga

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Commander sends one QMP command to a domain's qemu-guest-agent and returns the raw JSON reply
// ({"return": ...}). controller/libvirt's Source implements it with virDomainQemuAgentCommand.
// Implementations map libvirt's failures onto the sentinel errors below (wrapped, with libvirt's
// message), and must return when ctx ends.
type Commander interface {
	QemuAgentCommand(ctx context.Context, domain, command string, timeout time.Duration) (string, error)
}

// Sentinel errors a Commander wraps, so callers can say what to do next.
var (
	// ErrNotConfigured: the domain has no org.qemu.guest_agent.0 channel.
	ErrNotConfigured = errors.New("the domain has no qemu-guest-agent channel")
	// ErrNotResponding: the channel exists but nothing in the guest answers (qemu-ga not installed or
	// not running), or it did not answer in time.
	ErrNotResponding = errors.New("qemu-guest-agent does not answer")
	// ErrDomainNotRunning: the domain is shut off (or paused).
	ErrDomainNotRunning = errors.New("the domain is not running")
	// ErrNoDomain: libvirt knows no such domain.
	ErrNoDomain = errors.New("no such domain")
)

// AgentError is an error qemu-ga itself returned ({"error": {"class", "desc"}}).
type AgentError struct {
	// Class, e.g. "CommandNotFound", "GenericError".
	Class string
	// Desc is qemu-ga's description, sanitised.
	Desc string
}

func (e *AgentError) Error() string {
	return fmt.Sprintf("qemu-guest-agent: %s (%s)", e.Desc, e.Class)
}

// Disabled reports whether err says a command is disabled in the guest (qemu-ga --block-rpcs, or not
// in --allow-rpcs), as libvirt or qemu-ga word it.
func Disabled(err error) bool {
	if err == nil {
		return false
	}
	var ae *AgentError
	if errors.As(err, &ae) && ae.Class == "CommandDisabled" {
		return true
	}
	return strings.Contains(strings.ToLower(err.Error()), "has been disabled")
}

// Client speaks to one domain's qemu-guest-agent.
type Client struct {
	cmd     Commander
	domain  string
	timeout time.Duration
}

// DefaultTimeout bounds each command when NewClient gets none.
const DefaultTimeout = 10 * time.Second

// NewClient returns a client for domain; each command is bounded by timeout (and by its context).
func NewClient(cmd Commander, domain string, timeout time.Duration) *Client {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &Client{cmd: cmd, domain: domain, timeout: timeout}
}

// Domain is the domain the client speaks to.
func (c *Client) Domain() string { return c.domain }

func (c *Client) run(ctx context.Context, execute string, args any) (string, error) {
	req := map[string]any{"execute": execute}
	if args != nil {
		req["arguments"] = args
	}
	b, err := json.Marshal(req)
	if err != nil {
		return "", fmt.Errorf("%s: %w", execute, err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	reply, err := c.cmd.QemuAgentCommand(ctx, c.domain, string(b), c.timeout)
	if err != nil {
		return "", fmt.Errorf("%s on %s: %w", execute, c.domain, err)
	}
	return reply, nil
}

// Ping sends guest-ping: nil when qemu-ga answers.
func (c *Client) Ping(ctx context.Context) error {
	r, err := c.run(ctx, "guest-ping", nil)
	if err != nil {
		return err
	}
	_, err = unwrap(r)
	return err
}

// Info sends guest-info.
func (c *Client) Info(ctx context.Context) (Info, error) {
	r, err := c.run(ctx, "guest-info", nil)
	if err != nil {
		return Info{}, err
	}
	return ParseInfo(r)
}

// OSInfo sends guest-get-osinfo.
func (c *Client) OSInfo(ctx context.Context) (OSInfo, error) {
	r, err := c.run(ctx, "guest-get-osinfo", nil)
	if err != nil {
		return OSInfo{}, err
	}
	return ParseOSInfo(r)
}

// Interfaces sends guest-network-get-interfaces.
func (c *Client) Interfaces(ctx context.Context) ([]Interface, error) {
	r, err := c.run(ctx, "guest-network-get-interfaces", nil)
	if err != nil {
		return nil, err
	}
	return ParseInterfaces(r)
}

// HostName sends guest-get-host-name.
func (c *Client) HostName(ctx context.Context) (string, error) {
	r, err := c.run(ctx, "guest-get-host-name", nil)
	if err != nil {
		return "", err
	}
	return ParseHostName(r)
}

// FileOpen opens path in the guest with an fopen mode ("w", "r") and returns the handle.
func (c *Client) FileOpen(ctx context.Context, path, mode string) (int64, error) {
	r, err := c.run(ctx, "guest-file-open", map[string]any{"path": path, "mode": mode})
	if err != nil {
		return 0, err
	}
	return parseInt(r, "guest-file-open")
}

// FileWrite writes data to an open handle; it fails unless the guest wrote all of it.
func (c *Client) FileWrite(ctx context.Context, handle int64, data []byte) error {
	r, err := c.run(ctx, "guest-file-write", map[string]any{"handle": handle, "buf-b64": base64.StdEncoding.EncodeToString(data)})
	if err != nil {
		return err
	}
	n, err := parseWritten(r)
	if err != nil {
		return err
	}
	if n != len(data) {
		return fmt.Errorf("guest-file-write on %s: the guest wrote %d of %d bytes (disk full?)", c.domain, n, len(data))
	}
	return nil
}

// FileClose closes a handle.
func (c *Client) FileClose(ctx context.Context, handle int64) error {
	r, err := c.run(ctx, "guest-file-close", map[string]any{"handle": handle})
	if err != nil {
		return err
	}
	_, err = unwrap(r)
	return err
}

// Exec starts path with args in the guest (no shell), capturing its output, and returns its pid.
func (c *Client) Exec(ctx context.Context, path string, args ...string) (int64, error) {
	if args == nil {
		args = []string{}
	}
	r, err := c.run(ctx, "guest-exec", map[string]any{"path": path, "arg": args, "capture-output": true})
	if err != nil {
		return 0, err
	}
	return parsePID(r)
}

// ExecStatus asks for a started process's state.
func (c *Client) ExecStatus(ctx context.Context, pid int64) (ExecStatus, error) {
	r, err := c.run(ctx, "guest-exec-status", map[string]any{"pid": pid})
	if err != nil {
		return ExecStatus{}, err
	}
	return ParseExecStatus(r)
}

// Run starts path with args and waits (polling guest-exec-status, bounded by ctx) until it exits.
func (c *Client) Run(ctx context.Context, path string, args ...string) (ExecStatus, error) {
	pid, err := c.Exec(ctx, path, args...)
	if err != nil {
		return ExecStatus{}, err
	}
	// qemu-ga has no "wait": poll, quickly first (most commands end in milliseconds), then slower.
	delay := 20 * time.Millisecond
	for {
		st, err := c.ExecStatus(ctx, pid)
		if err != nil {
			return ExecStatus{}, err
		}
		if st.Exited {
			return st, nil
		}
		select {
		case <-ctx.Done():
			return ExecStatus{}, fmt.Errorf("%s %s in %s: still running: %w", path, strings.Join(args, " "), c.domain, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(delay*2, 500*time.Millisecond)
	}
}
