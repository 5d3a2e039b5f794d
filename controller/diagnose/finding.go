package diagnose

import (
	"fmt"
	"strings"

	"github.com/kvmnet/kvmnet/controller/snapshot"
)

// Code is a finding's stable identifier. Codes never change meaning; new ones are only added.
type Code string

// Host and network codes.
const (
	// CodeNetworkMissing: a libvirt network a NIC uses (or "default" when none is defined) does not exist.
	CodeNetworkMissing Code = "network_missing"
	// CodeNetworkInactive: a network is defined but not started.
	CodeNetworkInactive Code = "network_inactive"
	// CodeNetworkAutostartOff: a network in use will not start with libvirtd.
	CodeNetworkAutostartOff Code = "network_autostart_off"
	// CodeNetworkDHCPMissing: a libvirt-served network has an IPv4 address but no DHCP range or host.
	CodeNetworkDHCPMissing Code = "network_dhcp_missing"
	// CodeBridgeDown: a network's bridge is missing or down.
	CodeBridgeDown Code = "bridge_down"
	// CodeIPForwardOff: net.ipv4.ip_forward=0 while a NAT/routed/open network is active.
	CodeIPForwardOff Code = "ip_forward_off"
	// CodeNATMasqueradeMissing: no MASQUERADE/SNAT covers an active NAT network's subnet.
	CodeNATMasqueradeMissing Code = "nat_masquerade_missing"
	// CodeLibvirtRulesMissing: libvirt's LIBVIRT_* chains and its nftables table are gone.
	CodeLibvirtRulesMissing Code = "libvirt_rules_missing"
	// CodeUFWRoutedBlocked: UFW's routed policy drops guest traffic to the uplink.
	CodeUFWRoutedBlocked Code = "ufw_routed_blocked"
	// CodeForwardPolicyDrop: the FORWARD policy (usually Docker's) drops guest traffic.
	CodeForwardPolicyDrop Code = "forward_policy_drop"
	// CodeFirewallEgressBlocked: another rule (named in the evidence) drops guest traffic to the uplink.
	CodeFirewallEgressBlocked Code = "firewall_egress_blocked"
	// CodeNetworkForwardDevMismatch: a NAT/routed network's <forward dev=...> is not the interface
	// of the host's default route, so libvirt's own rules reject guests' traffic to the uplink.
	CodeNetworkForwardDevMismatch Code = "network_forward_dev_mismatch"
	// CodeHostDHCPDNSBlocked: the host firewall drops guests' DHCP or DNS to the bridge.
	CodeHostDHCPDNSBlocked Code = "host_dhcp_dns_blocked"
	// CodeFirewalldZoneMissing: firewalld runs but libvirt's zone is missing, or a libvirt bridge is
	// in another zone that rejects its guests.
	CodeFirewalldZoneMissing Code = "firewalld_zone_missing"
	// CodeFirewalldPolicyRejectForward: a firewalld policy rejects or drops guests' forwarded traffic.
	CodeFirewalldPolicyRejectForward Code = "firewalld_policy_reject_forward"
	// CodeFirewallUnreadable: the rule sets could not be read, firewall causes cannot be judged.
	CodeFirewallUnreadable Code = "firewall_unreadable"
	// CodeDnsmasqDown: libvirt's dnsmasq for a network is not running or not answering DNS.
	CodeDnsmasqDown Code = "dnsmasq_down"
	// CodeBridgeNetfilterDrop: br_netfilter hands bridged guest frames to the IP forward hook
	// (bridge-nf-call-iptables=1) and a rule or policy there drops them.
	CodeBridgeNetfilterDrop Code = "bridge_netfilter_drop"
	// CodeHostBridgeDown: a host bridge guests are plugged into (type='bridge') is missing or down.
	CodeHostBridgeDown Code = "host_bridge_down"
	// CodeHostBridgeNoUplink: a host bridge with guests has no uplink port, or its uplink is down.
	CodeHostBridgeNoUplink Code = "host_bridge_no_uplink"
	// CodeBridgePortBlocked: a bridged guest's tap is not in STP state forwarding.
	CodeBridgePortBlocked Code = "bridge_port_blocked"
)

// Guest codes.
const (
	// CodeGuestNICLinkDown: the NIC's link is down on the host side (domif-setlink) or in the guest.
	CodeGuestNICLinkDown Code = "guest_nic_link_down"
	// CodeGuestNICDetached: the NIC's tap (vnetN) is not a port of its network's bridge.
	CodeGuestNICDetached Code = "guest_nic_detached"
	// CodeGuestNICNotSeen: the agent sees no interface with the NIC's MAC.
	CodeGuestNICNotSeen Code = "guest_nic_not_seen"
	// CodeGuestNoIPv4: the guest interface has no IPv4 address.
	CodeGuestNoIPv4 Code = "guest_no_ipv4"
	// CodeGuestNoLease: libvirt's DHCP server has no lease for the MAC.
	CodeGuestNoLease Code = "guest_no_lease"
	// CodeGuestIPLeaseMismatch: the guest's address differs from its lease.
	CodeGuestIPLeaseMismatch Code = "guest_ip_lease_mismatch"
	// CodeGuestStaticWrongSubnet: the guest's address is outside the network's subnet.
	CodeGuestStaticWrongSubnet Code = "guest_static_wrong_subnet"
	// CodeGuestProfileWrongInterface: a NetworkManager profile is bound to an interface that does not exist.
	CodeGuestProfileWrongInterface Code = "guest_profile_wrong_interface"
	// CodeGuestProfileNameTaken: a NetworkManager profile has kvmnet's name (kvm-dhcp-<ifname>) but
	// not kvmnet's marker: someone else made it, and kvmnet's own profile for the NIC needs the name.
	CodeGuestProfileNameTaken Code = "guest_profile_name_taken"
	// CodeGuestNoDefaultRoute: the guest has IPv4 but no IPv4 default route on a network that has egress.
	CodeGuestNoDefaultRoute Code = "guest_no_default_route"
	// CodeGuestGatewayUnreachable: the guest's IPv4 gateway does not answer ping.
	CodeGuestGatewayUnreachable Code = "guest_gateway_unreachable"
	// CodeGuestIPv6Unroutable: IPv6 is enabled in the guest but the host side cannot route it.
	CodeGuestIPv6Unroutable Code = "guest_ipv6_unroutable"
	// CodeGuestAptIPv6Risk: apt/dnf may prefer unreachable IPv6 mirrors and hang.
	CodeGuestAptIPv6Risk Code = "guest_apt_ipv6_risk"
	// CodeGuestDNSFailure: name resolution through the guest's resolver fails.
	CodeGuestDNSFailure Code = "guest_dns_failure"
	// CodeGuestEgressBlocked: the gateway answers but TCP/HTTP to the outside fails.
	CodeGuestEgressBlocked Code = "guest_egress_blocked"
	// CodeGuestAgentUnreachable: the domain has an agent transport but the agent does not answer.
	CodeGuestAgentUnreachable Code = "guest_agent_unreachable"
	// CodeGuestAgentMissingChannel: the domain has neither an org.kvmnet.agent.0 channel nor vsock.
	CodeGuestAgentMissingChannel Code = "guest_agent_missing_channel"
	// CodeKvmnetAgentMissing: the kvmnet agent does not answer but qemu-guest-agent does, so kvmnetctl
	// can install the agent from the host (`kvmnetctl guests install-agent VM`).
	CodeKvmnetAgentMissing Code = "kvmnet_agent_missing"
	// CodeQemuGuestAgentMissing: qemu-guest-agent (or its channel) is missing or not running.
	CodeQemuGuestAgentMissing Code = "qemu_guest_agent_missing"
	// CodeSessionUsermodeNetwork: a NIC uses user-mode networking (qemu:///session).
	CodeSessionUsermodeNetwork Code = "session_usermode_network"
	// CodeChannelSocketExposed: a non-root host user can connect to the agent's channel socket.
	CodeChannelSocketExposed Code = "channel_socket_exposed"
)

// Severity grades a finding.
type Severity string

// Severities. Any SeverityError makes kvmnetctl exit 1.
const (
	SeverityError   Severity = "error"
	SeverityWarning Severity = "warning"
	SeverityInfo    Severity = "info"
)

// Finding is one diagnosed problem (or notable fact) with the evidence that led to it.
type Finding struct {
	// Code is the stable identifier.
	Code Code `json:"code"`
	// Severity: error, warning or info.
	Severity Severity `json:"severity"`
	// Subject: "host", "network NAME", "guest VM" or "guest VM/MAC".
	Subject string `json:"subject"`
	// Summary is one line for humans that carries the evidence (the rule, the lease, the profile).
	Summary string `json:"summary"`
	// Fix is a kvmnetctl command or the exact manual step.
	Fix string `json:"fix"`
	// Evidence are key=value strings, in the order they were gathered.
	Evidence []string `json:"evidence,omitempty"`
	// Domain is the domain concerned, if any (for fix planning).
	Domain string `json:"domain,omitempty"`
	// Network is the libvirt network concerned, if any.
	Network string `json:"network,omitempty"`
	// MAC is the guest NIC concerned, if any.
	MAC snapshot.MAC `json:"mac,omitempty"`
}

// Get returns the value of the first evidence entry with the given key, and whether there is one.
func (f Finding) Get(key string) (string, bool) {
	for _, e := range f.Evidence {
		if k, v, ok := strings.Cut(e, "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}

// Subjects.
const subjectHost = "host"

// SubjectNetwork returns the subject string for a network.
func SubjectNetwork(name string) string { return "network " + name }

// SubjectGuest returns the subject string for a guest, or one of its NICs when mac is not empty.
func SubjectGuest(domain string, mac snapshot.MAC) string {
	if mac == "" {
		return "guest " + domain
	}
	return "guest " + domain + "/" + string(mac)
}

// ev builds a key=value evidence string.
func ev(key string, value any) string {
	switch v := value.(type) {
	case string:
		if v == "" {
			v = `""`
		}
		return key + "=" + v
	case []string:
		if len(v) == 0 {
			return key + "=none"
		}
		return key + "=" + JoinMax(v, ",", MaxJoined)
	case bool:
		if v {
			return key + "=true"
		}
		return key + "=false"
	default:
		return key + "=" + fmt.Sprint(v)
	}
}

// HasErrors reports whether any finding has SeverityError.
func HasErrors(fs []Finding) bool {
	for _, f := range fs {
		if f.Severity == SeverityError {
			return true
		}
	}
	return false
}

// Codes returns the codes of fs in order.
func Codes(fs []Finding) []Code {
	out := make([]Code, 0, len(fs))
	for _, f := range fs {
		out = append(out, f.Code)
	}
	return out
}

// MaxJoined is how many items of a guest-reported list a summary or evidence line names: the agent
// may report hundreds of interfaces, and each profile's finding would repeat them all.
const MaxJoined = 8

// JoinMax joins the first max items with sep and says how many it left out ("a,b … and 3 more").
func JoinMax(items []string, sep string, max int) string {
	if len(items) <= max {
		return strings.Join(items, sep)
	}
	return fmt.Sprintf("%s … and %d more", strings.Join(items[:max], sep), len(items)-max)
}
