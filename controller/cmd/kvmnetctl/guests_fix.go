package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kvmnet/kvmnet/controller/agentclient"
	"github.com/kvmnet/kvmnet/controller/checks"
	"github.com/kvmnet/kvmnet/controller/collect"
	"github.com/kvmnet/kvmnet/controller/diagnose"
	"github.com/kvmnet/kvmnet/controller/fix"
	"github.com/kvmnet/kvmnet/controller/fixplan"
	"github.com/kvmnet/kvmnet/controller/libvirt"
	"github.com/kvmnet/kvmnet/controller/snapshot"
)

func newGuestsFixCmd(g *Globals) *cobra.Command {
	var (
		o      fixplan.GuestOptions
		dryRun bool
		yes    bool
	)
	cmd := &cobra.Command{
		Use:   "fix VM",
		Short: "Repair a guest's network from the host, verified and reversible",
		Long: `Repair a guest's network through its kvmnet agent, without logging in.

kvmnetctl diagnoses the guest, builds a plan (a DHCP profile bound to the NIC the host knows by MAC,
removal of profiles bound to interface names that do not exist, IPv6 off and apt/dnf forced to IPv4
when the host network cannot route IPv6), shows the exact changes the agent computes in the guest,
and asks before applying them. The agent applies them under a NetworkManager checkpoint that rolls
back by itself after --rollback-timeout. kvmnetctl then verifies from the host: a DHCP lease for the
MAC in libvirt (or the MAC in the bridge's neighbour table on bridged networks), the default gateway,
DNS through the guest's resolver, and TCP to the network's dnsmasq (plus --check-url). Only then is
the change confirmed; otherwise it is rolled back and the command exits 1 with the reason.

Host-side causes (UFW, a FORWARD DROP policy, an inactive network) are not fixed in the guest: they
are named, with ` + "`kvmnetctl host fix`" + ` as the way to repair them.`,
		Example: `  kvmnetctl guests fix web1 --dry-run
  kvmnetctl guests fix web1 --yes --check-url http://deb.debian.org/debian/
  kvmnetctl guests fix web1 --nic 52:54:00:12:34:56 --rollback-timeout 2m`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Domain = args[0]
			fio, err := newFixIO(g, os.Stdin, yes, dryRun)
			if err != nil {
				return err
			}
			r := g.Renderer()
			res, err := runGuestFix(cmd.Context(), g, fio, o, dryRun, hostEnv{})
			if g.Format.Structured() {
				if rerr := r.Render(res); rerr != nil && err == nil {
					err = rerr
				}
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.MAC, "nic", "", "fix only the NIC with this MAC address")
	f.BoolVar(&dryRun, "dry-run", false, "show the plan and the changes the agent would make; change nothing")
	f.BoolVarP(&yes, "yes", "y", false, "apply without asking")
	f.DurationVar(&o.RollbackTimeout, "rollback-timeout", fixplan.DefaultRollbackTimeout, "the guest undoes the change by itself unless it is verified within this time (10s..1h)")
	f.StringSliceVar(&o.CheckURLs, "check-url", nil, "URL the guest must fetch with HTTP GET before the fix is confirmed (repeatable)")
	f.StringVar(&o.CheckDNSName, "check-name", checks.DefaultName, "host name the guest must resolve through its resolver")
	f.BoolVar(&o.AllowStaticToDHCP, "allow-static-to-dhcp", false, "consent to replace a static address in the wrong subnet by DHCP")
	f.BoolVar(&o.AllowDNSReset, "allow-dns-reset", false, "consent to replace DNS servers set by hand in a profile (ipv4.dns, ignore-auto-dns) by the network's")
	f.BoolVar(&o.ReplaceForeignProfile, strings.TrimPrefix(diagnose.ReplaceForeignProfileFlag, "--"), false, "consent to delete a profile someone else made under kvmnet's name (kvm-dhcp-IFNAME) and create kvmnet's own")
	return cmd
}

// runGuestFix wires controller/fix to libvirt, the host network and the agent, then runs it.
func runGuestFix(ctx context.Context, g *Globals, fio fixIO, o fixplan.GuestOptions, dryRun bool, env hostEnv) (fix.GuestResult, error) {
	if o.RollbackTimeout < 10*time.Second || o.RollbackTimeout > time.Hour {
		return fix.GuestResult{}, Usage(fmt.Errorf("--rollback-timeout %s: must be between 10s and 1h", o.RollbackTimeout))
	}
	src, err := libvirt.Open(ctx, g.Connect, g.Getenv)
	if err != nil {
		return fix.GuestResult{}, Unreachable(err)
	}
	defer src.Close()
	deps := fix.GuestDeps{
		Snapshot: snapshotter(g, src, []string{o.Domain}, env),
		DialAgent: func(ctx context.Context, gs snapshot.Guest) (fix.Agent, error) {
			return agentclient.DialAddr(ctx, gs.Addr, agentclient.WithDialTimeout(g.Timeout))
		},
		Leases: func(ctx context.Context, network string) ([]snapshot.Lease, error) {
			n, err := src.Network(ctx, network)
			return n.Leases, err
		},
		Confirm: fio.confirm,
		Events:  fio.human.Event,
	}
	if onLibvirtHost(src) {
		deps.Neighbors = func(ctx context.Context, bridge string) ([]snapshot.Neighbor, error) {
			return bridgeNeighbors(ctx, env, bridge)
		}
	}
	// The fix itself may take the whole rollback window plus the agent's wait for an address.
	ctx, cancel := context.WithTimeout(ctx, o.RollbackTimeout+2*g.Timeout+30*time.Second)
	defer cancel()
	res, err := fix.Guest(ctx, deps, o, dryRun)
	switch {
	case err == nil:
		return res, nil
	case errors.Is(err, fixplan.ErrNoDomain), errors.Is(err, fixplan.ErrNoNIC):
		return res, Usage(err)
	case status.Code(errors.Unwrap(err)) == codes.PermissionDenied || status.Code(err) == codes.PermissionDenied:
		return res, Failed(fmt.Errorf("the agent of %s refuses changes: it runs in report-only mode (allow_apply: false in /etc/kvmnet/agent.yaml): %w", o.Domain, err))
	default:
		var ee *ExitError
		if errors.As(err, &ee) {
			return res, err
		}
		return res, Failed(err)
	}
}

// snapshotter collects (with guest checks) and diagnoses on the command's one libvirt connection,
// for the fix commands.
func snapshotter(g *Globals, src *libvirt.Source, domains []string, env hostEnv) fix.Snapshotter {
	return func(ctx context.Context) (snapshot.Snapshot, []diagnose.Finding, error) {
		cctx, cancel := withDeadline(ctx, g)
		defer cancel()
		var cf collectFlags
		cf.dnsName = checks.DefaultName
		opts := cf.options(g, true, nil)
		opts.Domains = domains
		s, r, err := collectReportOn(cctx, g, src, opts, env)
		if err != nil {
			return s, nil, err
		}
		return s, r.All(), nil
	}
}

// bridgeNeighbors returns the neighbour entries the host has on a bridge.
func bridgeNeighbors(ctx context.Context, env hostEnv, bridge string) ([]snapshot.Neighbor, error) {
	hn, err := env.hostnet()
	if err != nil {
		return nil, err
	}
	defer hn.Close()
	h, err := hn.Host(ctx, nil)
	if err != nil {
		return nil, err
	}
	for _, b := range h.Bridges {
		if b.Name == bridge {
			return b.Neighbors, nil
		}
	}
	return nil, fmt.Errorf("bridge %s not found on this host", bridge)
}

var (
	_ collect.Agent = (*agentclient.Client)(nil)
	_ fix.Agent     = (*agentclient.Client)(nil)
)
