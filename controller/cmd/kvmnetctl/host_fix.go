package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/kvmnet/kvmnet/controller/diagnose"
	"github.com/kvmnet/kvmnet/controller/fix"
	"github.com/kvmnet/kvmnet/controller/fix/hoststeps"
	"github.com/kvmnet/kvmnet/controller/fixplan"
	"github.com/kvmnet/kvmnet/controller/libvirt"
)

func newHostFixCmd(g *Globals) *cobra.Command {
	var (
		only        []string
		dryRun      bool
		yes         bool
		bridgeNFOff bool
	)
	cmd := &cobra.Command{
		Use:   "fix",
		Short: "Repair host-side causes: networks, ip_forward, UFW, Docker's FORWARD DROP, libvirt rules",
		Long: `Repair what the host check finds on the host side. Each change is printed as the exact command,
rule or XML change before it runs, needs confirmation unless --yes, and is re-checked afterwards: the
finding must be gone, or the command exits 1.

  network_missing        define the stock default NAT network (virbr0, 192.168.122.1/24) if free
  network_inactive       start the network (and mark it autostart)
  network_autostart_off  mark the network autostart
  ip_forward_off         set net.ipv4.ip_forward=1 now and persist it in /etc/sysctl.d
  ufw_routed_blocked     ufw route allow in on BRIDGE out on UPLINK (+ allow in on BRIDGE);
                         UFW is never disabled and nothing is opened to the outside
  forward_policy_drop    ACCEPT rules for the network's subnet in DOCKER-USER; Docker's policy stays
  libvirt_rules_missing  restart the network so libvirt re-creates its rules (DHCP may blip)
  bridge_netfilter_drop  ACCEPT frames bridged on the bridge (-m physdev --physdev-is-bridged) in
                         DOCKER-USER or FORWARD of the iptables world that dropped them; with
                         --bridge-nf-off instead net.bridge.bridge-nf-call-iptables=0 (+ sysctl.d)
  firewalld_zone_missing bind the bridge to firewalld's libvirt zone (runtime and permanent),
                         creating the zone as libvirt ships it when it is missing
  firewalld_policy_reject_forward
                         a policy kvmnet-libvirt (ingress libvirt, egress ANY, ACCEPT) before the
                         rejecting policy, which stays as it is; firewalld is reloaded
  channel_socket_exposed move the kvmnet channel socket into a root-only directory
  guest_nic_link_down    set the NIC's link up (when libvirt has it down)

firewall-cmd talks to firewalld on the system bus; KVMNET_FIREWALLD_BUS=ADDRESS points it at another
one (a firewalld in a test namespace on a private bus).`,
		Example: `  kvmnetctl host fix --dry-run
  kvmnetctl host fix --only ufw_routed_blocked --yes`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fio, err := newFixIO(g, os.Stdin, yes, dryRun)
			if err != nil {
				return err
			}
			r := g.Renderer()
			codes := make([]diagnose.Code, len(only))
			for i, c := range only {
				codes[i] = diagnose.Code(c)
			}
			res, err := runHostFix(cmd.Context(), g, fio, codes, dryRun, hostEnv{}, fixplan.HostOptions{BridgeNFOff: bridgeNFOff})
			if g.Format.Structured() {
				if rerr := r.Render(res); rerr != nil && err == nil {
					err = rerr
				}
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&only, "only", nil, "fix only these finding codes (repeatable, comma separated)")
	f.BoolVar(&dryRun, "dry-run", false, "print the commands; change nothing")
	f.BoolVarP(&yes, "yes", "y", false, "run every step without asking")
	f.BoolVar(&bridgeNFOff, "bridge-nf-off", false, "answer bridge_netfilter_drop with net.bridge.bridge-nf-call-iptables=0 instead of an ACCEPT rule (no bridged frame is filtered any more)")
	_ = cmd.RegisterFlagCompletionFunc("only", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		var out []string
		for _, c := range fixplan.FixableHostCodes() {
			out = append(out, string(c))
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	})
	return cmd
}

func runHostFix(ctx context.Context, g *Globals, fio fixIO, only []diagnose.Code, dryRun bool, env hostEnv, opts fixplan.HostOptions) (fix.HostResult, error) {
	src, err := libvirt.Open(ctx, g.Connect, g.Getenv)
	if err != nil {
		return fix.HostResult{}, Unreachable(err)
	}
	defer src.Close()
	if !onLibvirtHost(src) {
		return fix.HostResult{}, Usage(fmt.Errorf("host fix changes this machine: run it on the libvirt host of %s, not remotely", src.URI()))
	}
	res, err := fix.Host(ctx, fix.HostDeps{
		Snapshot: snapshotter(g, src, nil, env),
		Steps: hoststeps.Table(hoststeps.Env{Libvirt: src, Run: env.runner(), HostNet: env.hostnet,
			Files: env.files(), Root: env.root(), Out: fio.human, FirewalldBus: g.Getenv("KVMNET_FIREWALLD_BUS")}),
		Confirm: fio.confirm,
		Events:  fio.human.Event,
		Plan:    opts,
	}, only, dryRun)
	var ee *ExitError
	switch {
	case err == nil:
		return res, nil
	case errors.As(err, &ee):
		return res, err
	case errors.Is(err, fixplan.ErrNotHostFixable):
		return res, Usage(err)
	}
	return res, Failed(err)
}
