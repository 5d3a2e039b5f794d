// Package cmdrun is the agent's one way to start a process: the network stacks' own tools
// (netplan, networkctl, systemctl, journalctl) with argument vectors that agent/netstack builds from
// kernel interface names and fixed words. It refuses any other program and any argument with
// characters outside a conservative set, so nothing that arrives over the wire can become a command
// line. Output is bounded (64 KiB) and time by the caller's context.
//
// It must never import gRPC, NetworkManager or the wire API.
package cmdrun

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
)

// DefaultPrograms are the programs Exec runs unless told otherwise.
var defaultPrograms = []string{"netplan", "networkctl", "systemctl", "journalctl"}

// DefaultPrograms returns the programs the stack backends run.
func DefaultPrograms() []string { return slices.Clone(defaultPrograms) }

// MaxOutput bounds what is kept of a command's output.
const MaxOutput = 64 << 10

// ErrRefused is wrapped when a program or argument is not allowed.
var ErrRefused = errors.New("command refused")

var safeArg = regexp.MustCompile(`^[A-Za-z0-9@._:/=+-]{1,128}$`)

// Exec runs allow-listed programs with os/exec. The zero value allows DefaultPrograms.
type Exec struct {
	// Programs allowed (names looked up on PATH); nil means DefaultPrograms.
	Programs []string
}

// Run runs argv and returns its standard output and error together (bounded).
func (e Exec) Run(ctx context.Context, argv ...string) ([]byte, error) {
	progs := e.Programs
	if progs == nil {
		progs = defaultPrograms
	}
	if len(argv) == 0 || !slices.Contains(progs, argv[0]) {
		return nil, fmt.Errorf("%w: program %q is not one of %v", ErrRefused, first(argv), progs)
	}
	for _, a := range argv[1:] {
		if !safeArg.MatchString(a) {
			return nil, fmt.Errorf("%w: argument %q of %s", ErrRefused, a, argv[0])
		}
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	out := &limited{max: MaxOutput}
	cmd.Stdout, cmd.Stderr = out, out
	err := cmd.Run()
	return out.Bytes(), err
}

func first(a []string) string {
	if len(a) == 0 {
		return ""
	}
	return a[0]
}

// limited keeps the first max bytes written. The buffer is a field, not embedded: an embedded
// bytes.Buffer's ReadFrom would let io.Copy bypass Write and its bound.
type limited struct {
	buf bytes.Buffer
	max int
}

func (b *limited) Write(p []byte) (int, error) {
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *limited) Bytes() []byte { return b.buf.Bytes() }
