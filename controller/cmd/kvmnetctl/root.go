package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kvmnet/kvmnet/controller/output"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.0.0-dev"

// Exit codes.
const (
	ExitOK       = 0
	ExitFindings = 1 // error-level findings, a failed or rolled-back fix, other runtime errors
	ExitUsage    = 2 // bad flags or arguments, or the agent/libvirt could not be reached
)

// DefaultURI is used when neither -c nor LIBVIRT_DEFAULT_URI is given.
const DefaultURI = "qemu:///system"

// Globals are the values every command shares: global flags and the output streams.
type Globals struct {
	// Connect is the libvirt URI (-c/--connect).
	Connect string
	// Output is the -o/--output flag as given; Format is it parsed, once, before any command runs.
	Output string
	// Format is the parsed -o/--output.
	Format output.Format
	// Timeout bounds each command's talk with libvirt and agents (--timeout).
	Timeout time.Duration
	// Stdout and Stderr receive the command's output and messages.
	Stdout, Stderr io.Writer
	// Getenv reads the environment (injected for tests).
	Getenv func(string) string
}

// Renderer returns the renderer for the -o format on stdout.
func (g *Globals) Renderer() *output.Renderer {
	return output.New(g.Stdout, g.Format, g.Getenv)
}

// Context returns a context bounded by --timeout.
func (g *Globals) Context(parent context.Context) (context.Context, context.CancelFunc) {
	if g.Timeout <= 0 {
		return context.WithCancel(parent)
	}
	return context.WithTimeout(parent, g.Timeout)
}

// ExitError carries the exit code an error should produce.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// Usage marks err as a usage error (exit 2).
func Usage(err error) error { return &ExitError{Code: ExitUsage, Err: err} }

// Unreachable marks err as a connection error (exit 2).
func Unreachable(err error) error { return &ExitError{Code: ExitUsage, Err: err} }

// Failed marks err as exit 1 (findings at error level, failed fix).
func Failed(err error) error { return &ExitError{Code: ExitFindings, Err: err} }

// newRootCmd builds the command tree. Command groups add themselves here with one AddCommand line.
func newRootCmd(g *Globals) *cobra.Command {
	if g.Getenv == nil {
		g.Getenv = os.Getenv
	}
	root := &cobra.Command{
		Use:   "kvmnetctl",
		Short: "Diagnose and fix the networking of KVM/libvirt guests",
		Long: "kvmnetctl diagnoses and fixes the networking of KVM/libvirt guests: libvirt networks, the host's\n" +
			"bridges, forwarding and firewall, and - through kvmnet-agent inside each guest - the guest's own view.",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			f, err := output.ParseFormat(g.Output)
			if err != nil {
				return Usage(err)
			}
			g.Format = f
			return nil
		},
	}
	root.SetOut(g.Stdout)
	root.SetErr(g.Stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return Usage(err) })
	uri := g.Getenv("LIBVIRT_DEFAULT_URI")
	if uri == "" {
		uri = DefaultURI
	}
	pf := root.PersistentFlags()
	pf.StringVarP(&g.Connect, "connect", "c", uri, "libvirt URI (from $LIBVIRT_DEFAULT_URI, else "+DefaultURI+")")
	pf.StringVarP(&g.Output, "output", "o", "table", "output format: table, wide (every column), json or yaml")
	pf.DurationVar(&g.Timeout, "timeout", 10*time.Second, "time limit for talking to libvirt and agents")
	_ = root.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(
		[]string{"table", "wide", "json", "yaml"}, cobra.ShellCompDirectiveNoFileComp))

	root.AddCommand(newVersionCmd(g))
	root.AddCommand(newAgentCmd(g))
	root.AddCommand(newGuestsCmd(g))
	root.AddCommand(newHostCmd(g))
	root.AddCommand(newExporterCmd(g))
	addRemote(root, g)
	root.AddCommand(newManCmd(root))
	return root
}

// run executes kvmnetctl with args and returns the exit code.
func run(ctx context.Context, args []string, g *Globals) int {
	root := newRootCmd(g)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	fmt.Fprintln(g.Stderr, "kvmnetctl:", output.Sanitize(err.Error()))
	return exitCode(err)
}

func exitCode(err error) int {
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	// cobra's own argument errors.
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand", "accepts ", "requires at least",
		"required flag", "invalid argument"} {
		if strings.Contains(msg, p) {
			return ExitUsage
		}
	}
	return ExitFindings
}

func main() {
	os.Exit(run(context.Background(), os.Args[1:], &Globals{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}))
}
