package fixplan

import (
	"errors"
	"fmt"
	"slices"

	"github.com/kvmnet/kvmnet/controller/diagnose"
	"github.com/kvmnet/kvmnet/controller/snapshot"
)

// HostStepKind names what a host step does; controller/fix maps each kind to one adapter call.
type HostStepKind string

// Host step kinds, in the order they run.
const (
	// StepDefineDefaultNetwork defines the stock "default" NAT network (virbr0, 192.168.122.1/24).
	StepDefineDefaultNetwork HostStepKind = "define-default-network"
	// StepStartNetwork starts a defined network.
	StepStartNetwork HostStepKind = "start-network"
	// StepAutostartNetwork marks a network to start with libvirtd.
	StepAutostartNetwork HostStepKind = "autostart-network"
	// StepEnableIPForward sets net.ipv4.ip_forward=1 now and in /etc/sysctl.d.
	StepEnableIPForward HostStepKind = "enable-ip-forward"
	// StepRestartNetwork destroys and starts a network so libvirt re-creates its bridge, dnsmasq and
	// firewall rules.
	StepRestartNetwork HostStepKind = "restart-network"
	// StepUFWRouteAllow adds UFW route rules from the network's bridge to the uplink (and DHCP/DNS in).
	StepUFWRouteAllow HostStepKind = "ufw-route-allow"
	// StepDockerUserAccept inserts ACCEPT rules for the network's subnet into DOCKER-USER.
	StepDockerUserAccept HostStepKind = "docker-user-accept"
	// StepMoveChannel moves a domain's kvmnet channel socket into the root-only channel directory.
	StepMoveChannel HostStepKind = "move-channel"
	// StepLinkUp sets a domain NIC's link state up (virsh domif-setlink).
	StepLinkUp HostStepKind = "link-up"
)

var stepOrder = []HostStepKind{
	StepDefineDefaultNetwork, StepStartNetwork, StepAutostartNetwork, StepEnableIPForward,
	StepRestartNetwork, StepUFWRouteAllow, StepDockerUserAccept, StepFirewalldZone, StepFirewalldPolicyAccept, StepBridgedAccept, StepBridgeNFOff, StepLinkUp, StepMoveChannel,
}

// HostStepKinds returns every step kind, in the order steps run.
func HostStepKinds() []HostStepKind { return slices.Clone(stepOrder) }

// HostStep is one host change.
type HostStep struct {
	// Kind of change.
	Kind HostStepKind `json:"kind"`
	// Codes of the findings the step answers.
	Codes []diagnose.Code `json:"codes"`
	// Network concerned (network steps, firewall steps).
	Network string `json:"network,omitempty"`
	// Bridge of the network (firewall steps).
	Bridge string `json:"bridge,omitempty"`
	// Subnet of the network in CIDR form (firewall steps).
	Subnet string `json:"subnet,omitempty"`
	// Uplink is the host's default-route interface (firewall steps).
	Uplink string `json:"uplink,omitempty"`
	// Backend is the iptables world a firewall step changes ("iptables-nft", "iptables-legacy").
	Backend string `json:"backend,omitempty"`
	// Chain is the chain a firewall step inserts into (DOCKER-USER, FORWARD).
	Chain string `json:"chain,omitempty"`
	// Domain concerned (channel and link steps).
	Domain string `json:"domain,omitempty"`
	// Target is the domain NIC's tap device or MAC (link steps).
	Target string `json:"target,omitempty"`
	// Summary for humans.
	Summary string `json:"summary"`
	// Warning about side effects (e.g. running guests' DHCP may blip).
	Warning string `json:"warning,omitempty"`
}

// HostPlan is the list of host changes for a set of findings.
type HostPlan struct {
	// Steps in execution order.
	Steps []HostStep `json:"steps"`
	// Manual are findings kvmnet does not change on the host; their Fix says what to do.
	Manual []diagnose.Finding `json:"manual,omitempty"`
	// GuestSide are findings that `kvmnetctl guests fix` handles.
	GuestSide []diagnose.Finding `json:"guest_side,omitempty"`
}

// Host builds the host plan from a snapshot's findings. only restricts it to the given codes (empty
// = all); an unknown code in only is an error naming the valid ones.
func Host(s snapshot.Snapshot, findings []diagnose.Finding, only []diagnose.Code) (HostPlan, error) {
	return HostWith(s, findings, only, HostOptions{})
}

// HostWith is Host with the choices opts makes between repairs of the same finding.
func HostWith(s snapshot.Snapshot, findings []diagnose.Finding, only []diagnose.Code, opts HostOptions) (HostPlan, error) {
	fixable := FixableHostCodes()
	for _, c := range only {
		if !slices.Contains(fixable, c) {
			return HostPlan{}, fmt.Errorf("--only %s: %w; choose from %v", c, ErrNotHostFixable, fixable)
		}
	}
	var p HostPlan
	for _, f := range findings {
		if len(only) > 0 && !slices.Contains(only, f.Code) {
			continue
		}
		switch f.Code {
		case diagnose.CodeNetworkMissing:
			if f.Network != "" && f.Network != "default" {
				p.Manual = append(p.Manual, f) // only the stock default network has a known-good definition
				continue
			}
			p.addStep(f, HostStep{Kind: StepDefineDefaultNetwork, Network: "default",
				Summary: "define the stock default NAT network (virbr0, 192.168.122.1/24, DHCP .2-.254) if the subnet is free"})
			p.addStep(f, HostStep{Kind: StepStartNetwork, Network: "default", Summary: "start network default"})
			p.addStep(f, HostStep{Kind: StepAutostartNetwork, Network: "default", Summary: "autostart network default"})
		case diagnose.CodeNetworkInactive:
			p.addStep(f, HostStep{Kind: StepStartNetwork, Network: f.Network, Summary: "start network " + f.Network})
			if n, ok := s.Networks.Find(f.Network); ok && !n.Autostart {
				p.addStep(f, HostStep{Kind: StepAutostartNetwork, Network: f.Network, Summary: "autostart network " + f.Network})
			}
		case diagnose.CodeNetworkAutostartOff:
			p.addStep(f, HostStep{Kind: StepAutostartNetwork, Network: f.Network, Summary: "autostart network " + f.Network})
		case diagnose.CodeIPForwardOff:
			p.addStep(f, HostStep{Kind: StepEnableIPForward,
				Summary: "set net.ipv4.ip_forward=1 now and persist it in /etc/sysctl.d/99-kvmnet-ip-forward.conf"})
		case diagnose.CodeLibvirtRulesMissing, diagnose.CodeNATMasqueradeMissing, diagnose.CodeDnsmasqDown, diagnose.CodeBridgeDown:
			if n, ok := s.Networks.Find(f.Network); ok && n.Forward == snapshot.ForwardBridge {
				p.Manual = append(p.Manual, f) // the host bridge is not libvirt's: a restart does not create it
				continue
			}
			for _, n := range networksFor(s, f) {
				p.addStep(f, HostStep{Kind: StepRestartNetwork, Network: n.Name,
					Summary: "restart network " + n.Name + " so libvirt re-creates its bridge, dnsmasq and firewall rules",
					Warning: "running guests on " + n.Name + " lose connectivity for a moment and renew their DHCP lease"})
			}
		case diagnose.CodeUFWRoutedBlocked:
			for _, n := range networksFor(s, f) {
				p.addStep(f, HostStep{Kind: StepUFWRouteAllow, Network: n.Name, Bridge: n.Bridge, Subnet: n.Subnet(), Uplink: s.Host.Uplink,
					Summary: fmt.Sprintf("allow routed traffic in on %s out on %s in UFW (and DHCP/DNS in on %s); UFW stays enabled", n.Bridge, s.Host.Uplink, n.Bridge)})
			}
		case diagnose.CodeForwardPolicyDrop:
			if !s.Firewall.Docker {
				p.Manual = append(p.Manual, f) // only Docker's DOCKER-USER is a hook made for this
				continue
			}
			for _, n := range networksFor(s, f) {
				p.addStep(f, HostStep{Kind: StepDockerUserAccept, Network: n.Name, Bridge: n.Bridge, Subnet: n.Subnet(), Uplink: s.Host.Uplink,
					Summary: fmt.Sprintf("accept %s (%s -> %s) in DOCKER-USER; Docker's FORWARD policy is left as it is", n.Subnet(), n.Bridge, s.Host.Uplink)})
			}
		case diagnose.CodeBridgeNetfilterDrop:
			p.bridgeNetfilter(s, f, opts)
		case diagnose.CodeFirewalldZoneMissing, diagnose.CodeFirewalldPolicyRejectForward:
			p.firewalld(s, f)
		case diagnose.CodeChannelSocketExposed:
			p.addStep(f, HostStep{Kind: StepMoveChannel, Domain: f.Domain,
				Summary: "move the kvmnet channel of " + f.Domain + " to /var/lib/kvmnet/channels (root-only); takes effect at the next boot unless hot-swapped"})
		case diagnose.CodeGuestNICLinkDown:
			if side, _ := f.Get("side"); side == "host" || hostLinkDown(s, f) {
				p.addStep(f, HostStep{Kind: StepLinkUp, Domain: f.Domain, Target: string(f.MAC),
					Summary: "set the link of " + f.Domain + " NIC " + string(f.MAC) + " up (virsh domif-setlink)"})
				continue
			}
			p.GuestSide = append(p.GuestSide, f)
		default:
			if diagnose.FixerFor(f).Guest() {
				p.GuestSide = append(p.GuestSide, f)
			} else {
				p.Manual = append(p.Manual, f)
			}
		}
	}
	slices.SortStableFunc(p.Steps, func(a, b HostStep) int {
		return slices.Index(stepOrder, a.Kind) - slices.Index(stepOrder, b.Kind)
	})
	return p, nil
}

// ErrNotHostFixable is returned (wrapped) for a code in only that host fix does not act on.
var ErrNotHostFixable = errors.New("not a host-fixable code")

// FixableHostCodes returns the codes `kvmnetctl host fix --only` accepts: those the catalogue gives
// to the host fixer.
func FixableHostCodes() []diagnose.Code { return diagnose.CodesFixedBy(diagnose.FixerHost) }

// addStep appends a step, merging it into an identical earlier one (two findings, one restart).
func (p *HostPlan) addStep(f diagnose.Finding, st HostStep) {
	for i := range p.Steps {
		o := &p.Steps[i]
		if o.Kind == st.Kind && o.Network == st.Network && o.Domain == st.Domain && o.Target == st.Target && o.Bridge == st.Bridge {
			if !slices.Contains(o.Codes, f.Code) {
				o.Codes = append(o.Codes, f.Code)
			}
			return
		}
	}
	st.Codes = []diagnose.Code{f.Code}
	p.Steps = append(p.Steps, st)
}

// networksFor returns the network a finding names, or every active network whose traffic it may
// concern (host-wide findings such as a FORWARD policy apply to each NAT/routed network).
func networksFor(s snapshot.Snapshot, f diagnose.Finding) []snapshot.Network {
	if f.Network != "" {
		if n, ok := s.Networks.Find(f.Network); ok {
			return []snapshot.Network{n}
		}
		return nil
	}
	var out []snapshot.Network
	for _, n := range s.Networks {
		if n.Active && (n.Forward == snapshot.ForwardNAT || n.Forward == snapshot.ForwardRoute || n.Forward == snapshot.ForwardOpen) {
			out = append(out, n)
		}
	}
	return out
}

// hostLinkDown reports whether libvirt has the NIC's link set down (as opposed to down in the guest).
func hostLinkDown(s snapshot.Snapshot, f diagnose.Finding) bool {
	d, ok := s.FindDomain(f.Domain)
	if !ok {
		return false
	}
	n, ok := d.NIC(f.MAC)
	return ok && n.LinkState == "down"
}
