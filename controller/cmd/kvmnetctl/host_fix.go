package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kvmnet/kvmnet/controller/channel"
	"github.com/kvmnet/kvmnet/controller/channel/lvdomains"
	"github.com/kvmnet/kvmnet/controller/diagnose"
	"github.com/kvmnet/kvmnet/controller/firewall"
	"github.com/kvmnet/kvmnet/controller/fix"
	"github.com/kvmnet/kvmnet/controller/fixplan"
	"github.com/kvmnet/kvmnet/controller/libvirt"
	"github.com/kvmnet/kvmnet/controller/libvirt/lvxml"
	"github.com/kvmnet/kvmnet/controller/runner"
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
  channel_socket_exposed move the kvmnet channel socket into a root-only directory
  guest_nic_link_down    set the NIC's link up (when libvirt has it down)`,
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
	if !hostFacts(src) {
		return fix.HostResult{}, Usage(fmt.Errorf("host fix changes this machine: run it on the libvirt host of %s, not remotely", src.URI()))
	}
	acts := &hostActions{src: src, env: env, run: env.runner(), uri: src.URI(), out: fio.human}
	res, err := fix.Host(ctx, fix.HostDeps{
		Snapshot: snapshotter(g, nil, env),
		Actions:  acts,
		Confirm:  fio.confirm,
		Events:   fio.human.Event,
		Plan:     opts,
	}, only, dryRun)
	if err != nil {
		var ee *ExitError
		if errors.As(err, &ee) {
			return res, err
		}
		if strings.HasPrefix(err.Error(), "--only") {
			return res, Usage(err)
		}
		return res, Failed(err)
	}
	return res, nil
}

// hostActions carries out host steps with the real adapters: libvirt for networks and links,
// hostnet for ip_forward, controller/firewall's fixes through the runner, controller/channel for
// channel sockets.
type hostActions struct {
	src *libvirt.Source
	env hostEnv
	run runner.Runner
	uri string
	out io.Writer
	fw  *firewall.State
}

func (h *hostActions) virsh(args ...string) string {
	return runner.Quote(append([]string{"virsh", "-c", h.uri}, args...))
}

func (h *hostActions) firewallFix(ctx context.Context, st fixplan.HostStep) (firewall.Fix, error) {
	switch st.Kind {
	case fixplan.StepUFWRouteAllow:
		return firewall.UFWRoutedFix(st.Bridge, st.Uplink)
	default:
		if h.fw == nil {
			var files = h.env.files()
			s, err := firewall.NewReader(h.run, firewall.Options{Files: files}).Read(ctx)
			if err != nil {
				return firewall.Fix{}, fmt.Errorf("read the firewall: %w", err)
			}
			h.fw = s
		}
		return firewall.DockerForwardFix(st.Bridge, st.Uplink, st.Subnet, h.fw.DockerIptables())
	}
}

// Commands returns what a step amounts to, exactly.
func (h *hostActions) Commands(ctx context.Context, st fixplan.HostStep) ([]string, error) {
	switch st.Kind {
	case fixplan.StepDefineDefaultNetwork:
		if err := h.defaultSubnetFree(ctx); err != nil {
			return nil, err
		}
		return append([]string{h.virsh("net-define", "default.xml") + "   # default.xml:"}, strings.Split(strings.TrimSpace(lvxml.DefaultNetworkXML), "\n")...), nil
	case fixplan.StepStartNetwork:
		return []string{h.virsh("net-start", st.Network)}, nil
	case fixplan.StepAutostartNetwork:
		return []string{h.virsh("net-autostart", st.Network)}, nil
	case fixplan.StepRestartNetwork:
		return []string{h.virsh("net-destroy", st.Network), h.virsh("net-start", st.Network),
			"# then: ip link set vnetN master BRIDGE up  for each running guest NIC on " + st.Network + " (libvirt does not re-attach them)",
			"# then: iptables -I <builtin> 1 -j LIBVIRT_*  for each jump libvirtd added at start-up that is missing"}, nil
	case fixplan.StepEnableIPForward:
		hn, err := h.env.hostnet()
		if err != nil {
			return nil, err
		}
		defer hn.Close()
		return strings.Split(strings.TrimRight(hn.IPForwardFix().String(), "\n"), "\n"), nil
	case fixplan.StepUFWRouteAllow, fixplan.StepDockerUserAccept:
		f, err := h.firewallFix(ctx, st)
		if err != nil {
			return nil, err
		}
		var out []string
		for _, c := range f.Commands {
			out = append(out, c.String()+"   # "+c.Why)
		}
		return append(out, "# persistence: "+f.Persist), nil
	case fixplan.StepLinkUp:
		return []string{h.virsh("domif-setlink", st.Domain, st.Target, "up")}, nil
	case fixplan.StepMoveChannel:
		res, err := channel.FixExposed(ctx, lvdomains.Adapter{Src: h.src}, []string{st.Domain},
			channel.FixOptions{Confirm: func(string, string) (bool, error) { return false, nil }})
		if err != nil {
			return nil, err
		}
		var out []string
		for _, r := range res {
			out = append(out, strings.Split(strings.TrimRight(r.Diff, "\n"), "\n")...)
			out = append(out, "# "+r.Message)
		}
		return out, nil
	}
	if cmds, ok, err := h.bridgedCommands(st); ok {
		return cmds, err
	}
	return nil, fmt.Errorf("step %s is not supported", st.Kind)
}

// Do makes the change of a step.
func (h *hostActions) Do(ctx context.Context, st fixplan.HostStep) error {
	switch st.Kind {
	case fixplan.StepDefineDefaultNetwork:
		if err := h.defaultSubnetFree(ctx); err != nil {
			return err
		}
		_, err := h.src.DefineNetwork(ctx, lvxml.DefaultNetworkXML)
		return err
	case fixplan.StepStartNetwork:
		if err := h.src.StartNetwork(ctx, st.Network); err != nil {
			return err
		}
		// Guests still running from before net-destroy (network_inactive) or net-undefine
		// (network_missing) keep detached taps: the new bridge does not take them back (libvirt 9, lab).
		return h.reattachTaps(ctx, st.Network)
	case fixplan.StepAutostartNetwork:
		return h.src.SetNetworkAutostart(ctx, st.Network, true)
	case fixplan.StepRestartNetwork:
		fmt.Fprintf(h.out, "    %s\n", libvirt.RestartWarning)
		if err := h.src.RestartNetwork(ctx, st.Network); err != nil {
			return err
		}
		if err := h.reattachTaps(ctx, st.Network); err != nil {
			return err
		}
		return h.rehookLibvirt(ctx)
	case fixplan.StepEnableIPForward:
		hn, err := h.env.hostnet()
		if err != nil {
			return err
		}
		defer hn.Close()
		return hn.ApplyIPForwardFix(hn.IPForwardFix())
	case fixplan.StepUFWRouteAllow, fixplan.StepDockerUserAccept:
		f, err := h.firewallFix(ctx, st)
		if err != nil {
			return err
		}
		_, err = firewall.NewFixer(h.run).Apply(ctx, f, false)
		return err
	case fixplan.StepLinkUp:
		_, err := h.run.Run(ctx, "virsh", "-c", h.uri, "domif-setlink", st.Domain, st.Target, "up")
		return err
	case fixplan.StepMoveChannel:
		_, err := channel.FixExposed(ctx, lvdomains.Adapter{Src: h.src}, []string{st.Domain}, channel.FixOptions{
			Yes: true, Prepare: channel.LocalPreparer(channel.LocalOptions{QEMUConf: h.env.root() + "/etc/libvirt/qemu.conf",
				AccountsDir: h.env.root() + "/etc"}),
		})
		return err
	}
	if ok, err := h.bridgedDo(ctx, st); ok {
		return err
	}
	return fmt.Errorf("step %s is not supported", st.Kind)
}

// reattachTaps puts the taps of running guests back on the network's new bridge: libvirt 9 creates a
// new bridge on net-start but leaves existing vnetN devices detached.
func (h *hostActions) reattachTaps(ctx context.Context, network string) error {
	n, err := h.src.Network(ctx, network)
	if err != nil {
		return err
	}
	doms, err := h.src.Domains(ctx)
	if err != nil && doms == nil {
		return err
	}
	for _, d := range doms {
		if !d.Running() {
			continue
		}
		for _, nic := range d.NICs {
			if nic.Network != network || nic.Target == "" || n.Bridge == "" {
				continue
			}
			argv := []string{"ip", "link", "set", "dev", nic.Target, "master", n.Bridge, "up"}
			fmt.Fprintf(h.out, "    %s\n", runner.Quote(argv))
			if _, err := h.run.Run(ctx, argv[0], argv[1:]...); err != nil {
				return fmt.Errorf("re-attach %s of %s to %s: %w", nic.Target, d.Name, n.Bridge, err)
			}
		}
	}
	return nil
}

// rehookLibvirt re-inserts jumps into libvirt's chains that are missing (libvirtd adds them only when
// it starts, so a network restart after `iptables -F` leaves its chains unreachable).
func (h *hostActions) rehookLibvirt(ctx context.Context) error {
	st, err := firewall.NewReader(h.run, firewall.Options{Files: h.env.files()}).Read(ctx)
	if err != nil {
		return fmt.Errorf("re-read the firewall after the restart: %w", err)
	}
	h.fw = st
	unhooked := st.Snapshot(nil, "").LibvirtUnhooked
	if len(unhooked) == 0 {
		return nil
	}
	ipt := "iptables"
	if st.IPTablesNFT == nil && st.IPTablesLegacy != nil {
		ipt = "iptables-legacy"
	}
	f, err := firewall.LibvirtHooksFix(unhooked, ipt)
	if err != nil {
		return err
	}
	for _, c := range f.Commands {
		fmt.Fprintf(h.out, "    %s\n", c)
	}
	_, err = firewall.NewFixer(h.run).Apply(ctx, f, false)
	return err
}

// defaultSubnetFree refuses to define the stock network when 192.168.122.0/24 is already used.
func (h *hostActions) defaultSubnetFree(ctx context.Context) error {
	hn, err := h.env.hostnet()
	if err != nil {
		return err
	}
	defer hn.Close()
	prefixes, err := hn.HostPrefixes()
	if err != nil {
		return err
	}
	nets, err := h.src.Networks(ctx)
	if err != nil && nets == nil {
		return err
	}
	if free, ev := lvxml.SubnetFree(lvxml.DefaultSubnet, prefixes, nets); !free {
		return fmt.Errorf("%s is already in use (%s): define a network with another subnet by hand (virsh net-define)", lvxml.DefaultSubnet, ev)
	}
	return nil
}
