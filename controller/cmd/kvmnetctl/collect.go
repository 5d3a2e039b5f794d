package main

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/kvmnet/kvmnet/controller/agentclient"
	"github.com/kvmnet/kvmnet/controller/checks"
	"github.com/kvmnet/kvmnet/controller/collect"
	"github.com/kvmnet/kvmnet/controller/diagnose"
	"github.com/kvmnet/kvmnet/controller/firewall"
	"github.com/kvmnet/kvmnet/controller/hostnet"
	"github.com/kvmnet/kvmnet/controller/libvirt"
	"github.com/kvmnet/kvmnet/controller/output"
	"github.com/kvmnet/kvmnet/controller/qga"
	"github.com/kvmnet/kvmnet/controller/runner"
	"github.com/kvmnet/kvmnet/controller/snapshot"
	"github.com/kvmnet/kvmnet/controller/sockaccess"
)

// collectFlags are the flags of the commands that collect a snapshot (guests status, host check).
type collectFlags struct {
	noChecks bool
	dnsName  string
	targets  []string
	urls     []string
}

func (f *collectFlags) register(fs *pflag.FlagSet, withChecks bool) {
	if withChecks {
		fs.BoolVar(&f.noChecks, "no-checks", false, "do not run connectivity checks in the guests (gateway, DNS, TCP egress)")
		fs.StringVar(&f.dnsName, "check-name", checks.DefaultName, "host name the guests resolve through their own resolver")
		fs.StringSliceVar(&f.targets, "check-target", nil, "TCP egress target host:port checked from each guest (default: the --check-name host, port 80; repeatable)")
		fs.StringSliceVar(&f.urls, "check-url", nil, "URL fetched from each guest with HTTP GET (repeatable)")
	}
}

func (f *collectFlags) options(g *Globals, withChecks bool, domains []string) collect.Options {
	return collect.Options{
		Timeout: g.Timeout,
		Checks:  withChecks && !f.noChecks,
		Targets: checks.Targets{DNSName: f.dnsName, Egress: f.targets, URLs: f.urls},
		Domains: domains,
	}
}

// onLibvirtHost reports whether this process runs on the libvirt host of src: not for remote
// connections, and not for libvirt's test driver (its networks are fictitious; reading this machine's
// firewall for them would be wrong).
func onLibvirtHost(src *libvirt.Source) bool {
	return !src.Remote() && !strings.HasPrefix(src.URI(), "test:")
}

// hostEnv says where the libvirt host's own facts are read: this process's namespaces (a real host),
// or those of another process (a libvirtd inside a network and mount namespace: tests, the lab).
type hostEnv struct {
	// pid is 0 for the current namespaces.
	pid int
}

func (e hostEnv) runner() runner.Runner {
	if e.pid == 0 {
		return runner.NewExec()
	}
	return runner.NewExec(runner.InNamespacesOf(e.pid))
}

// root is where the host's files are seen ("" for /).
func (e hostEnv) root() string {
	if e.pid == 0 {
		return ""
	}
	return "/proc/" + strconv.Itoa(e.pid) + "/root"
}

// files is the host's root file system as seen from this process.
func (e hostEnv) files() fs.FS {
	if r := e.root(); r != "" {
		return os.DirFS(r)
	}
	return nil
}

func (e hostEnv) hostnet() (*hostnet.Reader, error) {
	if e.pid == 0 {
		return hostnet.Current()
	}
	return hostnet.ForPID(e.pid, "")
}

// agentDialer reaches the agents with the real client, each dial bounded by --timeout.
func agentDialer(g *Globals) collect.AgentDialer {
	return collect.DialFunc(func(ctx context.Context, addr snapshot.AgentAddr) (collect.Agent, error) {
		c, err := agentclient.DialAddr(ctx, addr, agentclient.WithDialTimeout(g.Timeout))
		if err != nil {
			return nil, err
		}
		return c, nil
	})
}

// connectCollector connects to libvirt (-c) and wires every source of controller/collect: libvirt,
// the host network (controller/hostnet), the firewall (controller/firewall through
// controller/runner), channel socket access (controller/sockaccess, trusting the user QEMU runs as)
// and the agents through agents (agentDialer; the exporter passes a read-only one). Host facts are
// read in env, and only when the connection is to this host. The returned function releases
// everything. A connection failure is an Unreachable error (exit 2).
func connectCollector(ctx context.Context, g *Globals, opts collect.Options, env hostEnv, agents collect.AgentDialer) (*collect.Collector, func(), error) {
	src, err := libvirt.Open(ctx, g.Connect, g.Getenv)
	if err != nil {
		return nil, nil, Unreachable(err)
	}
	c, closeFn, err := collectorOn(g, src, opts, env, agents)
	if err != nil {
		_ = src.Close()
		return nil, nil, err
	}
	return c, func() { closeFn(); _ = src.Close() }, nil
}

// collectorOn wires the collector on an open libvirt connection, which stays the caller's: the
// returned function releases only what it opened (the fix commands collect twice on one connection).
func collectorOn(g *Globals, src *libvirt.Source, opts collect.Options, env hostEnv, agents collect.AgentDialer) (*collect.Collector, func(), error) {
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	sources := collect.Sources{
		Libvirt: src,
		Agents:  agents,
		QGA: collect.QGAFunc(func(ctx context.Context, domain string) snapshot.QGAView {
			return qga.View(ctx, qga.NewClient(src, domain, g.Timeout))
		}),
	}
	if onLibvirtHost(src) {
		if hn, err := env.hostnet(); err == nil {
			closers = append(closers, func() { _ = hn.Close() })
			sources.HostNet = hn
		} else {
			fmt.Fprintf(g.Stderr, "kvmnetctl: host network not read: %s\n", output.Sanitize(err.Error()))
		}
		run := env.runner()
		files := env.files()
		sources.Firewall = collect.FirewallFunc(func(ctx context.Context, in collect.FirewallInput) (snapshot.Firewall, error) {
			st, err := firewall.NewReader(run, firewall.Options{Files: files}).Read(ctx)
			if err != nil {
				return snapshot.Firewall{}, err
			}
			fw := st.Snapshot(in.Networks, in.Uplink)
			fw.Flows = append(fw.Flows, st.BridgedFlows(firewall.BridgedPaths(in.Networks, in.Host, in.Domains), in.Host.BridgeNF)...)
			return fw, nil
		})
		in := sockaccess.Inspector{Root: env.root()}
		if acc, err := sockaccess.ReadAccounts(filepath.Join(env.root(), "/etc")); err == nil {
			q := sockaccess.QEMUSources{Accounts: acc}
			if r := env.root(); r != "" {
				q.QEMUConf, q.LibvirtDir = r+"/etc/libvirt/qemu.conf", r+"/var/lib/libvirt/qemu"
			}
			if id, err := sockaccess.QEMUUser(q); err == nil && id.User != "" {
				in.Trusted = []string{id.User}
			}
		}
		sources.Access = in
	}
	c, err := collect.New(sources, opts)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	return c, closeAll, nil
}

// collectReport collects a snapshot and diagnoses it. domains (guests status VM...) must exist:
// unknown names are a usage error (exit 2).
func collectReport(ctx context.Context, g *Globals, opts collect.Options) (snapshot.Snapshot, diagnose.Report, error) {
	return collectReportIn(ctx, g, opts, hostEnv{})
}

// collectReportIn is collectReport with the host's facts read in env.
func collectReportIn(ctx context.Context, g *Globals, opts collect.Options, env hostEnv) (snapshot.Snapshot, diagnose.Report, error) {
	c, closeFn, err := connectCollector(ctx, g, opts, env, agentDialer(g))
	if err != nil {
		return snapshot.Snapshot{}, diagnose.Report{}, err
	}
	defer closeFn()
	return collectAndDiagnose(ctx, c, opts)
}

// collectReportOn is collectReportIn on an open libvirt connection.
func collectReportOn(ctx context.Context, g *Globals, src *libvirt.Source, opts collect.Options, env hostEnv) (snapshot.Snapshot, diagnose.Report, error) {
	c, closeFn, err := collectorOn(g, src, opts, env, agentDialer(g))
	if err != nil {
		return snapshot.Snapshot{}, diagnose.Report{}, err
	}
	defer closeFn()
	return collectAndDiagnose(ctx, c, opts)
}

func collectAndDiagnose(ctx context.Context, c *collect.Collector, opts collect.Options) (snapshot.Snapshot, diagnose.Report, error) {
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

// withDeadline bounds the whole command: libvirt enumeration plus one --timeout for hosts and guests,
// plus a little for rendering.
func withDeadline(ctx context.Context, g *Globals) (context.Context, context.CancelFunc) {
	if g.Timeout <= 0 {
		g.Timeout = collect.DefaultTimeout
	}
	return context.WithTimeout(ctx, 2*g.Timeout+time.Second)
}
