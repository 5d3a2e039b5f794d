package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/kvmnet/kvmnet/controller/access"
	"github.com/kvmnet/kvmnet/controller/agentclient"
	"github.com/kvmnet/kvmnet/controller/collect"
	"github.com/kvmnet/kvmnet/controller/diagnose"
	"github.com/kvmnet/kvmnet/controller/firewall"
	"github.com/kvmnet/kvmnet/controller/libvirt"
	"github.com/kvmnet/kvmnet/controller/output"
	"github.com/kvmnet/kvmnet/controller/runner"
	"github.com/kvmnet/kvmnet/controller/snapshot"
)

// collectFlags are the flags of the commands that collect a snapshot (guests status, host check).
type collectFlags struct {
	noChecks bool
	dnsName  string
	targets  []string
	urls     []string
}

func (f *collectFlags) register(fs *pflag.FlagSet, checks bool) {
	if checks {
		fs.BoolVar(&f.noChecks, "no-checks", false, "do not run connectivity checks in the guests (gateway, DNS, TCP egress)")
		fs.StringVar(&f.dnsName, "check-name", "deb.debian.org", "host name the guests resolve through their own resolver")
		fs.StringSliceVar(&f.targets, "check-target", nil, "TCP egress target host:port checked from each guest (default deb.debian.org:80; repeatable)")
		fs.StringSliceVar(&f.urls, "check-url", nil, "URL fetched from each guest with HTTP GET (repeatable)")
	}
}

func (f *collectFlags) options(g *Globals, checks bool, domains []string) collect.Options {
	return collect.Options{
		Timeout: g.Timeout,
		Checks:  checks && !f.noChecks,
		Targets: collect.CheckTargets{DNSName: f.dnsName, Egress: f.targets, URLs: f.urls},
		Domains: domains,
	}
}

// hostFacts reports whether the host this process runs on is the libvirt host of uri: not for remote
// connections, and not for libvirt's test driver (its networks are fictitious; reading this machine's
// firewall for them would be wrong).
func hostFacts(src *libvirt.Source) bool {
	return !src.Remote() && !strings.HasPrefix(src.URI(), "test:")
}

// openCollector connects to libvirt (-c) and wires every source of controller/collect: libvirt, the
// firewall (through controller/runner), channel socket access (controller/access, trusting the user
// QEMU runs as) and the agents (controller/agentclient). The host-network source is wired once
// controller/hostnet exists. The returned function closes the libvirt connection. A connection
// failure is an Unreachable error (exit 2).
func openCollector(ctx context.Context, g *Globals, opts collect.Options) (*collect.Collector, func(), error) {
	src, err := libvirt.Open(ctx, g.Connect, g.Getenv)
	if err != nil {
		return nil, nil, Unreachable(err)
	}
	sources := collect.Sources{
		Libvirt: src,
		Agents: collect.DialFunc(func(ctx context.Context, addr string) (collect.Agent, error) {
			c, err := agentclient.Dial(ctx, addr, agentclient.WithDialTimeout(g.Timeout))
			if err != nil {
				return nil, err
			}
			return c, nil
		}),
	}
	if hostFacts(src) {
		sources.Firewall = collect.FirewallFunc(func(ctx context.Context, nets []snapshot.Network, uplink string) (snapshot.Firewall, error) {
			st, err := firewall.NewReader(runner.NewExec(), firewall.Options{}).Read(ctx)
			if err != nil {
				return snapshot.Firewall{}, err
			}
			return st.Snapshot(nets, uplink), nil
		})
		in := access.Inspector{}
		if acc, err := access.ReadAccounts("/etc"); err == nil {
			if id, err := access.QEMUUser(access.QEMUSources{Accounts: acc}); err == nil && id.User != "" {
				in.Trusted = []string{id.User}
			}
		}
		sources.Access = in
	}
	c, err := collect.New(sources, opts)
	if err != nil {
		_ = src.Close()
		return nil, nil, err
	}
	return c, func() { _ = src.Close() }, nil
}

// collectReport collects a snapshot and diagnoses it. domains (guests status VM...) must exist:
// unknown names are a usage error (exit 2).
func collectReport(ctx context.Context, g *Globals, opts collect.Options) (snapshot.Snapshot, diagnose.Report, error) {
	c, closeFn, err := openCollector(ctx, g, opts)
	if err != nil {
		return snapshot.Snapshot{}, diagnose.Report{}, err
	}
	defer closeFn()
	s, err := c.Collect(ctx)
	if err != nil {
		return s, diagnose.Report{}, Unreachable(err)
	}
	if err := collect.SelectDomains(s, opts.Domains); err != nil {
		return s, diagnose.Report{}, Usage(err)
	}
	r := diagnose.Diagnose(s)
	if len(opts.Domains) > 0 {
		r, _ = r.OnlyGuests(opts.Domains...)
	}
	return s, r, nil
}

// colorOn: colour only on a terminal, and never with NO_COLOR set.
func colorOn(g *Globals) bool {
	return output.IsTerminal(g.Stdout) && g.Getenv("NO_COLOR") == ""
}

// withDeadline bounds the whole command: libvirt enumeration plus one --timeout for hosts and guests,
// plus a little for rendering.
func withDeadline(ctx context.Context, g *Globals) (context.Context, context.CancelFunc) {
	if g.Timeout <= 0 {
		g.Timeout = collect.DefaultTimeout
	}
	return context.WithTimeout(ctx, 2*g.Timeout+time.Second)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}
