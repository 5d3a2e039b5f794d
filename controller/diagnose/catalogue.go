package diagnose

import "slices"

// Scope says what a code is about: the host as a whole, one libvirt network, or one guest.
type Scope string

// Scopes.
const (
	ScopeHost    Scope = "host"
	ScopeNetwork Scope = "network"
	ScopeGuest   Scope = "guest"
)

// Fixer names the kvmnetctl command that acts on a code.
type Fixer string

// Fixers.
const (
	// FixerHost: `kvmnetctl host fix --only CODE` changes the host.
	FixerHost Fixer = "host-fix"
	// FixerGuestDHCP: `kvmnetctl guests fix` gives the NIC a DHCP profile bound to its real name
	// (after removing the profiles that conflict with it).
	FixerGuestDHCP Fixer = "guests-fix-dhcp"
	// FixerGuestIPv6: `kvmnetctl guests fix` disables IPv6 and forces apt/dnf to IPv4.
	FixerGuestIPv6 Fixer = "guests-fix-ipv6"
	// FixerEnableChannel: `kvmnetctl guests enable-channel DOMAIN` adds the agent's channel.
	FixerEnableChannel Fixer = "enable-channel"
	// FixerInstallAgent: `kvmnetctl guests install-agent DOMAIN` installs kvmnet-agent through
	// qemu-guest-agent.
	FixerInstallAgent Fixer = "install-agent"
	// FixerManual: no kvmnetctl command changes it; the finding's fix text says what to do by hand.
	FixerManual Fixer = "manual"
)

// Guest reports whether the fixer is `kvmnetctl guests fix`.
func (f Fixer) Guest() bool { return f == FixerGuestDHCP || f == FixerGuestIPv6 }

// CodeInfo is what is fixed about a code whatever the finding: where it applies, how bad it can
// be, who repairs it. A finding adds the specifics (subject, evidence, the exact command).
type CodeInfo struct {
	// Code described.
	Code Code `json:"code"`
	// Scope is what the code is about. channel_socket_exposed is reported per guest but is the
	// host's configuration, so its scope is host (`kvmnetctl host check` shows it).
	Scope Scope `json:"scope"`
	// Severity is the highest severity a finding of this code gets.
	Severity Severity `json:"severity"`
	// Grading says when a finding gets less than Severity ("" = always Severity).
	Grading string `json:"grading,omitempty"`
	// Summary says what the code means, in one line.
	Summary string `json:"summary"`
	// Fixer is the command that acts on the code.
	Fixer Fixer `json:"fixer"`
	// FixCommand is that command as a template (DOMAIN, MAC stand for the finding's); "" for manual.
	FixCommand string `json:"fix_command,omitempty"`
	// FixLimits says when the fixer leaves a finding of this code alone and why ("" = never).
	FixLimits string `json:"fix_limits,omitempty"`
	// GuestSideFixer is the fixer of a finding whose evidence says side=guest, for a code whose
	// cause can be on either side ("" = Fixer whatever the side).
	GuestSideFixer Fixer `json:"guest_side_fixer,omitempty"`
	// HostCause is true for guest codes whose cause is on the host: fixing the guest cannot help.
	// Host and network codes always have their cause on the host.
	HostCause bool `json:"host_cause,omitempty"`
	// Runbook is the path of the code's runbook, docs/runbooks/<code>.md.
	Runbook string `json:"runbook"`
}

// CausedOnHost reports whether the code's cause is on the host (its scope, or HostCause).
func (c CodeInfo) CausedOnHost() bool { return c.Scope != ScopeGuest || c.HostCause }

// FixerFor is the fixer that acts on one finding: its code's, or GuestSideFixer when the evidence
// says the cause is in the guest (side=guest).
func FixerFor(f Finding) Fixer {
	c, _ := Lookup(f.Code)
	if side, _ := f.Get("side"); side == "guest" && c.GuestSideFixer != "" {
		return c.GuestSideFixer
	}
	return c.Fixer
}

// CausedOnHostFor reports whether one finding's cause is on the host: its evidence's side when it
// names one, else its code's.
func CausedOnHostFor(f Finding) bool {
	switch side, _ := f.Get("side"); side {
	case "host":
		return true
	case "guest":
		return false
	}
	c, _ := Lookup(f.Code)
	return c.CausedOnHost()
}

const (
	hostFixCmd   = "kvmnetctl host fix --only "
	guestFixCmd  = "kvmnetctl guests fix DOMAIN --nic MAC"
	guestWideCmd = "kvmnetctl guests fix DOMAIN"
)

// catalogue lists every code, host and network codes first, in the order of their constants.
var catalogue = []CodeInfo{
	{Code: CodeNetworkMissing, Scope: ScopeNetwork, Severity: SeverityError,
		Grading: "warning when no network is defined at all and no NIC names one",
		Summary: "a libvirt network a NIC uses (or \"default\" when none is defined) does not exist",
		Fixer:   FixerHost, FixLimits: "only the stock default network has a known-good definition; others are defined by hand"},
	{Code: CodeNetworkInactive, Scope: ScopeNetwork, Severity: SeverityError,
		Grading: "warning when only stopped guests use it (or it is \"default\"); info when nothing uses it",
		Summary: "a network is defined but not started", Fixer: FixerHost},
	{Code: CodeNetworkAutostartOff, Scope: ScopeNetwork, Severity: SeverityWarning,
		Summary: "a network in use will not start with libvirtd", Fixer: FixerHost},
	{Code: CodeNetworkDHCPMissing, Scope: ScopeNetwork, Severity: SeverityWarning,
		Summary: "a libvirt-served network has an IPv4 address but no DHCP range or host", Fixer: FixerManual},
	{Code: CodeBridgeDown, Scope: ScopeNetwork, Severity: SeverityError,
		Summary: "a network's bridge is missing or down", Fixer: FixerHost,
		FixLimits: "the host bridge of a forward-mode bridge network is not libvirt's: it is created by hand"},
	{Code: CodeIPForwardOff, Scope: ScopeHost, Severity: SeverityError,
		Summary: "net.ipv4.ip_forward=0 while a NAT/routed/open network is active", Fixer: FixerHost},
	{Code: CodeNATMasqueradeMissing, Scope: ScopeNetwork, Severity: SeverityError,
		Summary: "no MASQUERADE/SNAT covers an active NAT network's subnet", Fixer: FixerHost},
	{Code: CodeLibvirtRulesMissing, Scope: ScopeHost, Severity: SeverityError,
		Grading: "warning when only isolated networks lose their rules",
		Summary: "libvirt's LIBVIRT_* chains and its nftables table are gone", Fixer: FixerHost},
	{Code: CodeUFWRoutedBlocked, Scope: ScopeNetwork, Severity: SeverityError,
		Grading: "warning when judged from UFW's policy alone (flow not evaluated)",
		Summary: "UFW's routed policy drops guest traffic to the uplink", Fixer: FixerHost},
	{Code: CodeForwardPolicyDrop, Scope: ScopeNetwork, Severity: SeverityError,
		Grading: "warning when judged from the policy alone (flow not evaluated)",
		Summary: "the FORWARD policy (usually Docker's) drops guest traffic", Fixer: FixerHost,
		FixLimits: "only Docker's DOCKER-USER chain is a hook made for this; other DROP policies are changed by hand"},
	{Code: CodeFirewallEgressBlocked, Scope: ScopeNetwork, Severity: SeverityError,
		Summary: "another rule (named in the evidence) drops guest traffic to the uplink", Fixer: FixerManual},
	{Code: CodeNetworkForwardDevMismatch, Scope: ScopeNetwork, Severity: SeverityError,
		Summary: "a NAT/routed network forwards only by <forward dev>, which is not the host's uplink", Fixer: FixerManual,
		FixLimits: "the network's definition is the user's: kvmnet names the virsh net-edit change and the restart"},
	{Code: CodeHostDHCPDNSBlocked, Scope: ScopeNetwork, Severity: SeverityError,
		Summary: "the host firewall drops guests' DHCP or DNS to the bridge", Fixer: FixerManual},
	{Code: CodeFirewalldZoneMissing, Scope: ScopeHost, Severity: SeverityError,
		Summary: "firewalld runs but libvirt's zone is missing, or a libvirt bridge is in a zone that rejects its guests", Fixer: FixerHost,
		FixLimits: "binds the bridge to libvirt's zone (creating the zone as libvirt ships it when missing); a bridge kept in another zone on purpose is changed by hand"},
	{Code: CodeFirewalldPolicyRejectForward, Scope: ScopeNetwork, Severity: SeverityError,
		Summary: "a firewalld policy rejects or drops guests' forwarded traffic", Fixer: FixerHost,
		FixLimits: "only for bridges in libvirt's zones (libvirt, libvirt-routed); the rejecting policy itself is left as it is"},
	{Code: CodeFirewallUnreadable, Scope: ScopeHost, Severity: SeverityInfo,
		Summary: "the rule sets could not be read, firewall causes cannot be judged", Fixer: FixerManual},
	{Code: CodeDnsmasqDown, Scope: ScopeNetwork, Severity: SeverityError,
		Summary: "libvirt's dnsmasq for a network is not running or not answering DNS", Fixer: FixerHost},
	{Code: CodeBridgeNetfilterDrop, Scope: ScopeHost, Severity: SeverityError,
		Summary: "br_netfilter passes bridged guest frames to the IP forward hook, where a rule or policy drops them", Fixer: FixerHost,
		FixLimits: "iptables worlds only (a physdev ACCEPT in DOCKER-USER or FORWARD, or the sysctl off with --bridge-nf-off); a native nftables drop is changed by hand"},
	{Code: CodeHostBridgeDown, Scope: ScopeHost, Severity: SeverityError,
		Grading: "warning when no running guest uses the bridge",
		Summary: "a host bridge guests are plugged into (type='bridge') is missing or down", Fixer: FixerManual},
	{Code: CodeHostBridgeNoUplink, Scope: ScopeHost, Severity: SeverityError,
		Grading: "warning when no running guest uses the bridge",
		Summary: "a host bridge with guests has no uplink port enslaved, or its uplink port is down", Fixer: FixerManual},
	{Code: CodeBridgePortBlocked, Scope: ScopeHost, Severity: SeverityError,
		Grading: "warning while spanning tree is still listening or learning",
		Summary: "a bridged guest's tap is not in STP port state forwarding", Fixer: FixerManual},

	{Code: CodeGuestNICLinkDown, Scope: ScopeGuest, Severity: SeverityError, HostCause: true,
		Summary: "the NIC's link is down on the host side (domif-setlink) or in the guest", Fixer: FixerHost, GuestSideFixer: FixerGuestDHCP,
		FixLimits: "host fix sets the host side's link up; a link down in the guest (evidence side=guest) is left to guests fix"},
	{Code: CodeGuestNICDetached, Scope: ScopeGuest, Severity: SeverityError, HostCause: true,
		Summary: "the NIC's tap (vnetN) is not a port of its network's bridge", Fixer: FixerManual},
	{Code: CodeGuestNICNotSeen, Scope: ScopeGuest, Severity: SeverityError,
		Summary: "the agent sees no interface with the NIC's MAC", Fixer: FixerManual},
	{Code: CodeGuestNoIPv4, Scope: ScopeGuest, Severity: SeverityError,
		Grading: "warning when network_dhcp_missing is the cause",
		Summary: "the guest interface has no IPv4 address", Fixer: FixerGuestDHCP},
	{Code: CodeGuestNoLease, Scope: ScopeGuest, Severity: SeverityError,
		Grading: "warning when the guest has an address anyway (DHCP from another server, or static as the bridge sees it)",
		Summary: "libvirt's DHCP server has no lease for the MAC", Fixer: FixerGuestDHCP},
	{Code: CodeGuestIPLeaseMismatch, Scope: ScopeGuest, Severity: SeverityWarning,
		Summary: "the guest's address differs from its lease", Fixer: FixerGuestDHCP},
	{Code: CodeGuestStaticWrongSubnet, Scope: ScopeGuest, Severity: SeverityError,
		Grading: "warning on a bridged LAN, which may carry more subnets than the host's own",
		Summary: "the guest's address is outside the network's subnet", Fixer: FixerGuestDHCP,
		FixLimits: "a static address is the user's choice: only with --allow-static-to-dhcp"},
	{Code: CodeGuestProfileWrongInterface, Scope: ScopeGuest, Severity: SeverityError,
		Grading: "warning when every NIC the agent sees has IPv4 anyway",
		Summary: "a NetworkManager profile is bound to an interface that does not exist", Fixer: FixerGuestDHCP},
	{Code: CodeGuestProfileNameTaken, Scope: ScopeGuest, Severity: SeverityWarning,
		Summary: "a NetworkManager profile someone else made has the name kvmnet gives its own (kvm-dhcp-<ifname>)", Fixer: FixerGuestDHCP,
		FixLimits: "the profile is someone else's: replaced only with " + ReplaceForeignProfileFlag + "; otherwise the NIC's DHCP fix is left alone and the finding says how to rename or delete it by hand"},
	{Code: CodeGuestNoDefaultRoute, Scope: ScopeGuest, Severity: SeverityError,
		Summary: "the guest has IPv4 but no IPv4 default route on a network that has egress", Fixer: FixerGuestDHCP},
	{Code: CodeGuestGatewayUnreachable, Scope: ScopeGuest, Severity: SeverityError,
		Summary: "the guest's IPv4 gateway does not answer ping", Fixer: FixerGuestDHCP},
	{Code: CodeGuestIPv6Unroutable, Scope: ScopeGuest, Severity: SeverityError,
		Grading: "error only when an IPv6 check fails while IPv4 works",
		Summary: "IPv6 is enabled in the guest but the host side cannot route it", Fixer: FixerGuestIPv6},
	{Code: CodeGuestAptIPv6Risk, Scope: ScopeGuest, Severity: SeverityWarning,
		Summary: "apt/dnf may prefer unreachable IPv6 mirrors and hang", Fixer: FixerGuestIPv6},
	{Code: CodeGuestDNSFailure, Scope: ScopeGuest, Severity: SeverityError,
		Grading: "warning when the resolver has no nameserver at all (no check ran)",
		Summary: "name resolution through the guest's resolver fails", Fixer: FixerManual, GuestSideFixer: FixerGuestDHCP,
		FixLimits: "guests fix re-applies the DHCP profile when the guest's resolver is at fault (side=guest); a dnsmasq or forwarder cause (side=host) is fixed on the host by hand"},
	{Code: CodeGuestEgressBlocked, Scope: ScopeGuest, Severity: SeverityError, HostCause: true,
		Summary: "the gateway answers but TCP/HTTP to the outside fails", Fixer: FixerManual},
	{Code: CodeGuestAgentUnreachable, Scope: ScopeGuest, Severity: SeverityWarning,
		Summary: "the domain has an agent transport but the agent does not answer", Fixer: FixerManual},
	{Code: CodeGuestAgentMissingChannel, Scope: ScopeGuest, Severity: SeverityWarning,
		Grading: "info when the domain is not running",
		Summary: "the domain has neither an org.kvmnet.agent.0 channel nor vsock", Fixer: FixerEnableChannel},
	{Code: CodeKvmnetAgentMissing, Scope: ScopeGuest, Severity: SeverityWarning,
		Summary: "the kvmnet agent does not answer but qemu-guest-agent does (interfaces come from it)", Fixer: FixerInstallAgent},
	{Code: CodeQemuGuestAgentMissing, Scope: ScopeGuest, Severity: SeverityWarning,
		Summary: "qemu-guest-agent (or its channel) is missing or not running", Fixer: FixerManual},
	{Code: CodeSessionUsermodeNetwork, Scope: ScopeGuest, Severity: SeverityWarning,
		Summary: "a NIC uses user-mode networking (qemu:///session)", Fixer: FixerManual},
	{Code: CodeChannelSocketExposed, Scope: ScopeHost, Severity: SeverityError,
		Grading: "warning when the agent is report-only (allow_apply=false)",
		Summary: "a non-root host user can connect to the agent's channel socket", Fixer: FixerHost},
}

// filled completes an entry with what follows from its code and fixer.
func filled(c CodeInfo) CodeInfo {
	c.Runbook = "docs/runbooks/" + string(c.Code) + ".md"
	switch c.Fixer {
	case FixerHost:
		c.FixCommand = hostFixCmd + string(c.Code)
	case FixerGuestDHCP:
		c.FixCommand = guestFixCmd
	case FixerGuestIPv6:
		c.FixCommand = guestWideCmd
	case FixerEnableChannel:
		c.FixCommand = "kvmnetctl guests enable-channel DOMAIN"
	case FixerInstallAgent:
		c.FixCommand = "kvmnetctl guests install-agent DOMAIN"
	}
	return c
}

// Catalogue returns every code kvmnet reports, with its scope, grading and fixer; a copy, in a
// stable order (host and network codes first).
func Catalogue() []CodeInfo {
	out := make([]CodeInfo, len(catalogue))
	for i, c := range catalogue {
		out[i] = filled(c)
	}
	return out
}

// Lookup returns what the catalogue says about a code; ok is false for a code it does not list.
func Lookup(c Code) (CodeInfo, bool) {
	i := slices.IndexFunc(catalogue, func(ci CodeInfo) bool { return ci.Code == c })
	if i < 0 {
		return CodeInfo{}, false
	}
	return filled(catalogue[i]), true
}

// CodesFixedBy returns the codes the given fixer acts on, in catalogue order.
func CodesFixedBy(f Fixer) []Code {
	var out []Code
	for _, c := range catalogue {
		if c.Fixer == f {
			out = append(out, c.Code)
		}
	}
	return out
}
