package hoststeps

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/kvmnet/kvmnet/controller/channel"
	"github.com/kvmnet/kvmnet/controller/channel/libvirtdomains"
	"github.com/kvmnet/kvmnet/controller/firewall"
	"github.com/kvmnet/kvmnet/controller/fix"
	"github.com/kvmnet/kvmnet/controller/fixplan"
	"github.com/kvmnet/kvmnet/controller/hostnet"
	"github.com/kvmnet/kvmnet/controller/libvirt"
	"github.com/kvmnet/kvmnet/controller/libvirt/libvirtxml"
	"github.com/kvmnet/kvmnet/controller/runner"
	"github.com/kvmnet/kvmnet/controller/snapshot"
)

// Env is what the steps act through, on the libvirt host itself.
type Env struct {
	// Libvirt is the command's one connection.
	Libvirt *libvirt.Source
	// Run runs host commands (virsh, ip, iptables, ufw) in the host's namespaces.
	Run runner.Runner
	// HostNet opens the host network reader (sysctls, prefixes); the caller closes it.
	HostNet func() (*hostnet.Reader, error)
	// Files is the host's root file system for the firewall reader (nil: this process's).
	Files fs.FS
	// Root is where the host's files are seen ("" for /): qemu.conf and the accounts.
	Root string
	// Out receives the lines a step prints while it runs (taps re-attached, jumps re-added).
	Out io.Writer
	// FirewalldBus is the D-Bus address of the firewalld that the firewalld steps change through
	// firewall-cmd ("" = firewall-cmd's default, the system bus of this host; tests and the lab give
	// a private bus).
	FirewalldBus string
}

// steps carries out the table's entries; fw caches the firewall read for the Docker steps.
type steps struct {
	Env
	fw *firewall.State
}

// Table returns one entry per step kind kvmnet carries out on the host.
func Table(e Env) fix.HostSteps {
	s := &steps{Env: e}
	return fix.HostSteps{
		fixplan.StepDefineDefaultNetwork:  s.defineDefaultNetwork,
		fixplan.StepStartNetwork:          s.startNetwork,
		fixplan.StepAutostartNetwork:      s.autostartNetwork,
		fixplan.StepEnableIPForward:       s.enableIPForward,
		fixplan.StepRestartNetwork:        s.restartNetwork,
		fixplan.StepUFWRouteAllow:         s.firewallStep,
		fixplan.StepDockerUserAccept:      s.firewallStep,
		fixplan.StepBridgedAccept:         s.bridgedAccept,
		fixplan.StepFirewalldZone:         s.firewalld,
		fixplan.StepFirewalldPolicyAccept: s.firewalld,
		fixplan.StepBridgeNFOff:           s.bridgeNFOff,
		fixplan.StepLinkUp:                s.linkUp,
		fixplan.StepMoveChannel:           s.moveChannel,
	}
}

func (s *steps) virsh(args ...string) []string {
	return append([]string{"virsh", "-c", s.Libvirt.URI()}, args...)
}

func lines(text string) []string { return strings.Split(strings.TrimRight(text, "\n"), "\n") }

// firewallCommands shows a firewall fix: each command with why, then how it persists.
func firewallCommands(f firewall.Fix) []string {
	var out []string
	for _, c := range f.Commands {
		out = append(out, c.String()+"   # "+c.Why)
	}
	return append(out, "# persistence: "+f.Persist)
}

func (s *steps) applyFirewall(f firewall.Fix) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := firewall.NewFixer(s.Run).Apply(ctx, f, false)
		return err
	}
}

func (s *steps) defineDefaultNetwork(ctx context.Context, _ fixplan.HostStep) (fix.HostChange, error) {
	if err := s.defaultSubnetFree(ctx); err != nil {
		return fix.HostChange{}, err
	}
	return fix.HostChange{
		Commands: append([]string{runner.Quote(s.virsh("net-define", "default.xml")) + "   # default.xml:"}, lines(strings.TrimSpace(libvirtxml.DefaultNetworkXML))...),
		Do: func(ctx context.Context) error {
			if err := s.defaultSubnetFree(ctx); err != nil { // again: the user may have waited at the prompt
				return err
			}
			_, err := s.Libvirt.DefineNetwork(ctx, libvirtxml.DefaultNetworkXML)
			return err
		},
	}, nil
}

func (s *steps) startNetwork(_ context.Context, st fixplan.HostStep) (fix.HostChange, error) {
	return fix.HostChange{
		Commands: []string{runner.Quote(s.virsh("net-start", st.Network))},
		Do: func(ctx context.Context) error {
			if err := s.Libvirt.StartNetwork(ctx, st.Network); err != nil {
				return err
			}
			// Guests still running from before net-destroy (network_inactive) or net-undefine
			// (network_missing) keep detached taps: the new bridge does not take them back (libvirt 9).
			return s.reattachTaps(ctx, st.Network)
		},
	}, nil
}

func (s *steps) autostartNetwork(_ context.Context, st fixplan.HostStep) (fix.HostChange, error) {
	return fix.HostChange{
		Commands: []string{runner.Quote(s.virsh("net-autostart", st.Network))},
		Do:       func(ctx context.Context) error { return s.Libvirt.SetNetworkAutostart(ctx, st.Network, true) },
	}, nil
}

func (s *steps) restartNetwork(_ context.Context, st fixplan.HostStep) (fix.HostChange, error) {
	return fix.HostChange{
		Commands: []string{runner.Quote(s.virsh("net-destroy", st.Network)), runner.Quote(s.virsh("net-start", st.Network)),
			"# then: ip link set vnetN master BRIDGE up  for each running guest NIC on " + st.Network + " (libvirt does not re-attach them)",
			"# then: iptables -I <builtin> 1 -j LIBVIRT_*  for each jump libvirtd added at start-up that is missing"},
		Do: func(ctx context.Context) error {
			fmt.Fprintf(s.Out, "    %s\n", libvirt.RestartWarning)
			if err := s.Libvirt.RestartNetwork(ctx, st.Network); err != nil {
				return err
			}
			if err := s.reattachTaps(ctx, st.Network); err != nil {
				return err
			}
			return s.rehookLibvirt(ctx)
		},
	}, nil
}

// sysctlStep shows and applies a hostnet sysctl fix: fixOf computes it, apply makes it.
func sysctlStep[F fmt.Stringer](s *steps, fixOf func(*hostnet.Reader) F, apply func(*hostnet.Reader, F) error) (fix.HostChange, error) {
	hn, err := s.HostNet()
	if err != nil {
		return fix.HostChange{}, err
	}
	f := fixOf(hn)
	_ = hn.Close()
	return fix.HostChange{
		Commands: lines(f.String()),
		Do: func(context.Context) error {
			hn, err := s.HostNet()
			if err != nil {
				return err
			}
			defer hn.Close()
			return apply(hn, f)
		},
	}, nil
}

func (s *steps) enableIPForward(context.Context, fixplan.HostStep) (fix.HostChange, error) {
	return sysctlStep(s, (*hostnet.Reader).IPForwardFix, (*hostnet.Reader).ApplyIPForwardFix)
}

func (s *steps) bridgeNFOff(context.Context, fixplan.HostStep) (fix.HostChange, error) {
	c, err := sysctlStep(s, (*hostnet.Reader).BridgeNFOffFix, (*hostnet.Reader).ApplyBridgeNFOffFix)
	if err != nil {
		return c, err
	}
	do := c.Do
	c.Do = func(ctx context.Context) error {
		if err := do(ctx); err != nil {
			return fmt.Errorf("bridge_netfilter_drop: %w", err)
		}
		return nil
	}
	return c, nil
}

func (s *steps) firewallStep(ctx context.Context, st fixplan.HostStep) (fix.HostChange, error) {
	var f firewall.Fix
	var err error
	if st.Kind == fixplan.StepUFWRouteAllow {
		f, err = firewall.UFWRoutedFix(st.Bridge, st.Uplink)
	} else {
		if s.fw == nil {
			fw, rerr := firewall.NewReader(s.Run, firewall.Options{Files: s.Files}).Read(ctx)
			if rerr != nil {
				return fix.HostChange{}, fmt.Errorf("read the firewall: %w", rerr)
			}
			s.fw = fw
		}
		f, err = firewall.DockerForwardFix(st.Bridge, st.Uplink, st.Subnet, s.fw.DockerIptables())
	}
	if err != nil {
		return fix.HostChange{}, err
	}
	return fix.HostChange{Commands: firewallCommands(f), Do: s.applyFirewall(f)}, nil
}

// firewalld builds a firewalld step from a fresh read of the firewall: an earlier step of the same
// run may have changed firewalld's zones.
func (s *steps) firewalld(ctx context.Context, st fixplan.HostStep) (fix.HostChange, error) {
	fw, err := firewall.NewReader(s.Run, firewall.Options{Files: s.Files}).Read(ctx)
	if err != nil {
		return fix.HostChange{}, fmt.Errorf("read the firewall: %w", err)
	}
	if fw.Firewalld == nil {
		return fix.HostChange{}, fmt.Errorf("firewalld is not installed here (no /etc/firewalld, no inet firewalld table): nothing to change")
	}
	fc := firewall.FirewallCmd{Bus: s.FirewalldBus}
	var f firewall.Fix
	if st.Kind == fixplan.StepFirewalldZone {
		f, err = firewall.FirewalldZoneFix(fw.Firewalld, st.Bridge, fc)
	} else {
		f, err = firewall.FirewalldPolicyFix(fw.Firewalld, st.Bridge, fc)
	}
	if err != nil {
		return fix.HostChange{}, err
	}
	return fix.HostChange{Commands: firewallCommands(f), Do: s.applyFirewall(f)}, nil
}

func (s *steps) bridgedAccept(_ context.Context, st fixplan.HostStep) (fix.HostChange, error) {
	f, err := firewall.BridgedAcceptFix(st.Bridge, st.Chain, st.Backend)
	if err != nil {
		return fix.HostChange{}, err
	}
	return fix.HostChange{Commands: firewallCommands(f), Do: s.applyFirewall(f)}, nil
}

func (s *steps) linkUp(_ context.Context, st fixplan.HostStep) (fix.HostChange, error) {
	argv := s.virsh("domif-setlink", st.Domain, st.Target, "up")
	return fix.HostChange{
		Commands: []string{runner.Quote(argv)},
		Do: func(ctx context.Context) error {
			_, err := s.Run.Run(ctx, argv[0], argv[1:]...)
			return err
		},
	}, nil
}

func (s *steps) moveChannel(ctx context.Context, st fixplan.HostStep) (fix.HostChange, error) {
	res, err := channel.FixExposed(ctx, libvirtdomains.Adapter{Src: s.Libvirt}, []string{st.Domain},
		channel.FixOptions{Confirm: func(string, string) (bool, error) { return false, nil }})
	if err != nil {
		return fix.HostChange{}, err
	}
	var out []string
	for _, r := range res {
		out = append(out, lines(r.Diff)...)
		out = append(out, "# "+r.Message)
	}
	return fix.HostChange{
		Commands: out,
		Do: func(ctx context.Context) error {
			_, err := channel.FixExposed(ctx, libvirtdomains.Adapter{Src: s.Libvirt}, []string{st.Domain}, channel.FixOptions{
				Yes: true, Prepare: channel.LocalPreparer(channel.LocalOptions{QEMUConf: s.Root + "/etc/libvirt/qemu.conf",
					AccountsDir: s.Root + "/etc"}),
			})
			return err
		},
	}, nil
}

// reattachTaps puts the taps of running guests back on the network's new bridge: libvirt 9 creates a
// new bridge on net-start but leaves existing vnetN devices detached.
func (s *steps) reattachTaps(ctx context.Context, network string) error {
	n, err := s.Libvirt.Network(ctx, network)
	if err != nil {
		return err
	}
	doms, err := s.Libvirt.Domains(ctx)
	if err != nil && doms == nil {
		return err
	}
	for _, d := range doms {
		if !d.Running() {
			continue
		}
		for _, nic := range d.NICs {
			if snapshot.Networks([]snapshot.Network{n}).NameOf(nic) != network || nic.Target == "" || n.Bridge == "" {
				continue
			}
			argv := []string{"ip", "link", "set", "dev", nic.Target, "master", n.Bridge, "up"}
			fmt.Fprintf(s.Out, "    %s\n", runner.Quote(argv))
			if _, err := s.Run.Run(ctx, argv[0], argv[1:]...); err != nil {
				return fmt.Errorf("re-attach %s of %s to %s: %w", nic.Target, d.Name, n.Bridge, err)
			}
		}
	}
	return nil
}

// rehookLibvirt re-inserts jumps into libvirt's chains that are missing (libvirtd adds them only when
// it starts, so a network restart after `iptables -F` leaves its chains unreachable).
func (s *steps) rehookLibvirt(ctx context.Context) error {
	st, err := firewall.NewReader(s.Run, firewall.Options{Files: s.Files}).Read(ctx)
	if err != nil {
		return fmt.Errorf("re-read the firewall after the restart: %w", err)
	}
	s.fw = st
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
		fmt.Fprintf(s.Out, "    %s\n", c)
	}
	return s.applyFirewall(f)(ctx)
}

// defaultSubnetFree refuses to define the stock network when 192.168.122.0/24 is already used.
func (s *steps) defaultSubnetFree(ctx context.Context) error {
	hn, err := s.HostNet()
	if err != nil {
		return err
	}
	defer hn.Close()
	prefixes, err := hn.HostPrefixes()
	if err != nil {
		return err
	}
	nets, err := s.Libvirt.Networks(ctx)
	if err != nil && nets == nil {
		return err
	}
	if free, ev := libvirtxml.SubnetFree(libvirtxml.DefaultSubnet, prefixes, nets); !free {
		return fmt.Errorf("%s is already in use (%s): define a network with another subnet by hand (virsh net-define)", libvirtxml.DefaultSubnet, ev)
	}
	return nil
}
