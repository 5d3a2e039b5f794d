package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kvmnet/kvmnet/controller/diagnose"
	"github.com/kvmnet/kvmnet/controller/fleet"
	"github.com/kvmnet/kvmnet/controller/output"
	"github.com/kvmnet/kvmnet/controller/remote"
	"github.com/kvmnet/kvmnet/controller/runner"
)

// remoteFlags are the root's --ssh* flags.
type remoteFlags struct {
	dest, config, kvmnetctl, netns string
	options                        []string
}

func (rf *remoteFlags) client() remote.Client {
	var run runner.Runner = runner.NewExec()
	if rf.netns != "" {
		run = runner.NewExec(runner.InNetns(rf.netns))
	}
	return remote.Client{Runner: run, ConfigFile: rf.config, Options: rf.options, Kvmnetctl: rf.kvmnetctl}
}

// remoteCommands run on the --ssh host instead of here; the others refuse --ssh.
var remoteCommands = []string{"kvmnetctl guests status", "kvmnetctl guests fix", "kvmnetctl host check"}

// addRemote adds the --ssh flags to root, makes the commands of remoteCommands run remotely when
// --ssh is given, and adds `fleet status`.
func addRemote(root *cobra.Command, g *Globals) {
	rf := &remoteFlags{}
	pf := root.PersistentFlags()
	pf.StringVar(&rf.dest, "ssh", "", "run guests status|fix and host check on [USER@]HOST over ssh (kvmnetctl must be installed there)")
	pf.StringVar(&rf.config, "ssh-config", "", "ssh configuration file (ssh -F)")
	pf.StringArrayVar(&rf.options, "ssh-option", nil, "ssh -o option KEY=VALUE (repeatable)")
	pf.StringVar(&rf.kvmnetctl, "ssh-kvmnetctl", "kvmnetctl", "kvmnetctl program on the remote host")
	pf.StringVar(&rf.netns, "ssh-netns", "", "run ssh inside this network namespace (a management VRF)")
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			walk(sub)
		}
		if c.RunE == nil {
			return
		}
		local := c.RunE
		isRemote := false
		for _, p := range remoteCommands {
			isRemote = isRemote || c.CommandPath() == p
		}
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if rf.dest == "" {
				return local(cmd, args)
			}
			if !isRemote {
				return Usage(fmt.Errorf("--ssh works with %s only", strings.Join(remoteCommands, ", ")))
			}
			return runRemote(cmd, args, g, rf)
		}
	}
	walk(root)
	root.AddCommand(newFleetCmd(g, rf))
}

// remoteArgs rebuilds the command line for the remote kvmnetctl: the command's path, the flags the
// user set (-c, --timeout and the command's own), and its arguments.
func remoteArgs(cmd *cobra.Command, args []string, format string) []string {
	out := []string{"-o", format}
	add := func(f *pflag.Flag) {
		if !f.Changed || strings.HasPrefix(f.Name, "ssh") || f.Name == "output" {
			return
		}
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			for _, v := range sv.GetSlice() {
				out = append(out, "--"+f.Name+"="+v)
			}
			return
		}
		out = append(out, "--"+f.Name+"="+f.Value.String())
	}
	// VisitAll + Changed: cobra parses into the command's merged flag set, so Visit on the root's
	// own set would see nothing.
	cmd.Root().PersistentFlags().VisitAll(add)
	out = append(out, strings.Fields(strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" "))...)
	cmd.LocalNonPersistentFlags().VisitAll(add)
	return append(append(out, "--"), args...)
}

// remoteDeadline bounds one remote run: the remote command's own deadline plus ssh's connection.
func remoteDeadline(g *Globals) time.Duration {
	t := g.Timeout
	if t <= 0 {
		t = 10 * time.Second
	}
	return 2*t + 10*time.Second
}

// remoteReport runs a report command (guests status, host check) on dest and decodes its JSON.
func remoteReport(ctx context.Context, c remote.Client, dest string, args []string) (diagnose.Report, int, error) {
	res, err := c.Run(ctx, dest, args)
	if err != nil {
		return diagnose.Report{}, 0, err
	}
	if res.ExitCode > 1 {
		return diagnose.Report{}, res.ExitCode, fmt.Errorf("%s: kvmnetctl exited %d (usage or libvirt connection error there): %s", dest, res.ExitCode, res.Message)
	}
	var r diagnose.Report
	if err := json.Unmarshal(res.Stdout, &r); err != nil {
		return diagnose.Report{}, res.ExitCode, fmt.Errorf("%s: kvmnetctl's JSON: %w (is it the same version?)", dest, err)
	}
	return r, res.ExitCode, nil
}

func runRemote(cmd *cobra.Command, args []string, g *Globals, rf *remoteFlags) error {
	ctx, cancel := context.WithTimeout(cmd.Context(), remoteDeadline(g))
	defer cancel()
	c := rf.client()
	if cmd.CommandPath() == "kvmnetctl guests fix" {
		// The fix's own output (plan, progress, result) is shown as the remote host prints it, made
		// safe for this terminal; -o json/yaml are passed through after a validity check.
		format := g.Output
		if format == "" {
			format = "table"
		}
		res, err := c.Run(ctx, rf.dest, remoteArgs(cmd, args, format))
		if err != nil {
			return Unreachable(err)
		}
		if g.Format.Structured() && format == "json" && !json.Valid(bytes.TrimSpace(res.Stdout)) {
			return Failed(fmt.Errorf("%s: kvmnetctl printed no valid JSON", rf.dest))
		}
		for _, l := range strings.SplitAfter(string(res.Stdout), "\n") {
			if l == "" {
				continue
			}
			if g.Format.Structured() {
				fmt.Fprint(g.Stdout, l)
			} else {
				fmt.Fprintln(g.Stdout, output.Sanitize(strings.TrimSuffix(l, "\n")))
			}
		}
		return exitAs(res, rf.dest)
	}
	r, exit, err := remoteReport(ctx, c, rf.dest, remoteArgs(cmd, args, "json"))
	if err != nil {
		if errors.Is(err, remote.ErrUnreachable) || exit > 1 {
			return Unreachable(err)
		}
		return Failed(err)
	}
	rend := g.Renderer()
	switch {
	case rend.Format().Structured():
		err = rend.Render(r)
	case cmd.CommandPath() == "kvmnetctl host check":
		err = output.WriteHostCheck(g.Stdout, r, rend.Palette())
	default:
		err = output.WriteStatus(g.Stdout, r, rend.Palette(), rend.Format() == output.FormatWide)
	}
	if err != nil {
		return err
	}
	return exitAs(remote.Result{ExitCode: exit}, rf.dest)
}

// exitAs turns the remote kvmnetctl's exit status into ours, with its reason when it gave one.
func exitAs(res remote.Result, dest string) error {
	why := ""
	if res.Message != "" {
		why = ": " + res.Message
	}
	switch res.ExitCode {
	case 0:
		return nil
	case 1:
		if why == "" {
			why = ": error-level findings (or the fix failed) there"
		}
		return Failed(fmt.Errorf("%s%s", dest, why))
	}
	return Unreachable(fmt.Errorf("%s: kvmnetctl exited %d there%s", dest, res.ExitCode, why))
}

func newFleetCmd(g *Globals, rf *remoteFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "fleet", Short: "Ask several hosts at once (over ssh)"}
	var workers int
	status := &cobra.Command{
		Use:   "status [USER@]HOST...",
		Short: "One row per host: guests, unhealthy guests and error codes, from kvmnetctl guests status run there",
		Long: "status runs `kvmnetctl -o json guests status` on every HOST over ssh concurrently, each within its\n" +
			"own deadline (twice --timeout plus ssh's connection), and joins the answers into one table; a host\n" +
			"that cannot be reached or does not answer in time is a row saying why. -o json includes every host's\n" +
			"full report. Exit status: 0 every host answered without error-level findings, 1 otherwise.",
		Example: "  kvmnetctl fleet status root@hv1 root@hv2 hv3\n  kvmnetctl fleet status --ssh-config ~/.ssh/kvm hv1 hv2 -o json",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, hosts []string) error {
			for _, h := range hosts {
				if err := remote.ValidDestination(h); err != nil {
					return Usage(err)
				}
			}
			c := rf.client()
			args := []string{"-o", "json"}
			if cmd.Root().PersistentFlags().Changed("timeout") {
				args = append(args, "--timeout="+g.Timeout.String())
			}
			if cmd.Root().PersistentFlags().Changed("connect") {
				args = append(args, "--connect="+g.Connect)
			}
			args = append(args, "guests", "status")
			r := fleet.Status(cmd.Context(), hosts, remoteDeadline(g), workers, func(ctx context.Context, h string) (diagnose.Report, int, error) {
				return remoteReport(ctx, c, h, args)
			})
			for i := range r.Hosts {
				r.Hosts[i].Error = remote.Printable(r.Hosts[i].Error, 300)
			}
			if err := g.Renderer().Render(r); err != nil {
				return err
			}
			if !r.Healthy() {
				return Failed(errors.New(r.Summary()))
			}
			return nil
		},
	}
	status.Flags().IntVar(&workers, "workers", 16, "hosts asked at once")
	cmd.AddCommand(status)
	return cmd
}
