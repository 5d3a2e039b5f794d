package diagnose

import (
	"slices"
	"strings"
	"testing"

	"github.com/kvmnet/kvmnet/controller/snapshot"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// want describes the finding a case is about.
type want struct {
	code     Code
	sev      Severity
	subject  string
	evidence []string // exact key=value entries that must be present
	summary  []string // substrings of the summary
	fix      string   // substring of the fix
}

type tcase struct {
	name   string
	base   func() snapshot.Snapshot
	mutate func(s *snapshot.Snapshot)
	// codes are ALL the codes of the report (host findings first, then guests), in order: no more,
	// no fewer (root causes are named once, consequences are not repeated as extra findings).
	codes   []Code
	finding *want
	healthy *bool // vm1's health, when asserted
}

func ptr[T any](v T) *T { return &v }

func gst(s *snapshot.Snapshot) *kvmnetv1.GuestState { return s.Guests[0].State }

func firstIface(s *snapshot.Snapshot) *kvmnetv1.Interface { return s.Guests[0].State.Interfaces[0] }

func noDefaultRoute(s *snapshot.Snapshot) {
	for _, it := range gst(s).Interfaces {
		it.DefaultRouteV4 = false
	}
	gst(s).Routes = nil
}

func cases() []tcase {
	return []tcase{
		// Healthy worlds, each judged by its own kind's rules: no findings at all.
		{name: "healthy NAT", base: healthyNAT, codes: nil, healthy: ptr(true)},
		{name: "healthy isolated (no internet, no ip_forward, no MASQUERADE, DNS out fails)", base: healthyIsolated, codes: nil, healthy: ptr(true)},
		{name: "healthy bridged (no libvirt lease, neighbour entry, ip_forward off)", base: healthyBridged, codes: nil, healthy: ptr(true)},
		{name: "healthy routed (no MASQUERADE)", base: healthyRouted, codes: nil, healthy: ptr(true)},
		{name: "healthy multi-NIC (NAT + isolated, matched by MAC)", base: multiNIC, codes: nil, healthy: ptr(true)},
		{name: "healthy NAT on libvirt's nftables table", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			s.Firewall.LibvirtChains, s.Firewall.LibvirtNFTable, s.Firewall.Backend = nil, true, "nftables"
		}, codes: nil, healthy: ptr(true)},

		// Host and network codes.
		{name: "network_missing: used by a domain", base: healthyNAT, mutate: func(s *snapshot.Snapshot) { s.Networks = nil },
			codes: []Code{CodeNetworkMissing}, healthy: ptr(false),
			finding: &want{code: CodeNetworkMissing, sev: SeverityError, subject: "network default",
				evidence: []string{"used_by=vm1", "defined_networks=0"}, fix: "kvmnetctl host fix --only network_missing"}},
		{name: "network_missing: nothing defined at all", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			s.Networks, s.Domains, s.Guests = nil, nil, nil
		}, codes: []Code{CodeNetworkMissing},
			finding: &want{code: CodeNetworkMissing, sev: SeverityWarning, subject: "network default", evidence: []string{"defined_networks=0"}}},
		{name: "network_inactive", base: healthyNAT, mutate: func(s *snapshot.Snapshot) { s.Networks[0].Active = false },
			codes: []Code{CodeNetworkInactive}, healthy: ptr(false),
			finding: &want{code: CodeNetworkInactive, sev: SeverityError, subject: "network default",
				evidence: []string{"active=false", "used_by=vm1"}, fix: "virsh net-start default"}},
		{name: "network_inactive: only shut-off guests use it", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			s.Networks[0].Active, s.Domains[0].State, s.Guests = false, "shut off", nil
		}, codes: []Code{CodeNetworkInactive}, healthy: ptr(true),
			finding: &want{code: CodeNetworkInactive, sev: SeverityWarning, summary: []string{"cannot start"}}},
		{name: "network_inactive: unused default is a warning", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			s.Networks[0].Active, s.Domains, s.Guests = false, nil, nil
		}, codes: []Code{CodeNetworkInactive},
			finding: &want{code: CodeNetworkInactive, sev: SeverityWarning, subject: "network default"}},
		{name: "network_autostart_off", base: healthyNAT, mutate: func(s *snapshot.Snapshot) { s.Networks[0].Autostart = false },
			codes: []Code{CodeNetworkAutostartOff}, healthy: ptr(true),
			finding: &want{code: CodeNetworkAutostartOff, sev: SeverityWarning, subject: "network default", fix: "virsh net-autostart default"}},
		{name: "network_dhcp_missing", base: healthyNAT, mutate: func(s *snapshot.Snapshot) { s.Networks[0].IPs[0].DHCPRanges = nil },
			codes: []Code{CodeNetworkDHCPMissing},
			finding: &want{code: CodeNetworkDHCPMissing, sev: SeverityWarning, subject: "network default",
				fix: "<dhcp><range start='192.168.122.2' end='192.168.122.254'/></dhcp>"}},
		{name: "bridge_down: missing", base: healthyNAT, mutate: func(s *snapshot.Snapshot) { s.Host.Bridges = nil },
			codes: []Code{CodeBridgeDown}, healthy: ptr(false),
			finding: &want{code: CodeBridgeDown, sev: SeverityError, subject: "network default", evidence: []string{"bridge_present=false"}}},
		{name: "bridge_down: admin down", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			s.Host.Bridges[0].AdminUp, s.Host.Bridges[0].OperState = false, "down"
		}, codes: []Code{CodeBridgeDown},
			finding: &want{code: CodeBridgeDown, sev: SeverityError, evidence: []string{"admin_up=false"}, fix: "ip link set dev virbr0 up"}},
		{name: "bridge without ports oper-down is normal", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			s.Host.Bridges[0].OperState = "down"
			s.Domains, s.Guests = nil, nil
		}, codes: nil},
		{name: "bridge_down not judged when host links were not read", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			s.Host.Bridges, s.Host.Read = nil, false
		}, codes: nil},
		{name: "ip_forward_off", base: healthyNAT, mutate: func(s *snapshot.Snapshot) { s.Host.IPForward = false },
			codes: []Code{CodeIPForwardOff}, healthy: ptr(false),
			finding: &want{code: CodeIPForwardOff, sev: SeverityError, subject: "host",
				evidence: []string{"net.ipv4.ip_forward=0", "networks=default"}, fix: "--only ip_forward_off"}},
		{name: "nat_masquerade_missing", base: healthyNAT, mutate: func(s *snapshot.Snapshot) { s.Firewall.Masquerade = nil },
			codes: []Code{CodeNATMasqueradeMissing}, healthy: ptr(false),
			finding: &want{code: CodeNATMasqueradeMissing, sev: SeverityError, subject: "network default",
				evidence: []string{"subnet=192.168.122.0/24", "masquerade_sources=none"}}},
		{name: "nat_masquerade_missing: evaluated, no rule translates", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			s.Firewall.Flows[0].NATRule = "accept in nat/POSTROUTING: policy ACCEPT of POSTROUTING"
		}, codes: []Code{CodeNATMasqueradeMissing},
			finding: &want{code: CodeNATMasqueradeMissing, sev: SeverityError, evidence: []string{"evaluated=true"}}},
		{name: "masquerade evaluated (NAT table elsewhere than the parsed list)", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			s.Firewall.Masquerade = nil
			s.Firewall.Flows[0].NAT, s.Firewall.Flows[0].NATRule = "masquerade", "-A LIBVIRT_PRT -s 192.168.122.0/24 ! -d 192.168.122.0/24 -j MASQUERADE"
		}, codes: nil},
		{name: "masquerade covered by a wider source", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			s.Firewall.Masquerade = []string{"192.168.0.0/16"}
		}, codes: nil},
		{name: "libvirt_rules_missing (flushed; MASQUERADE loss not repeated)", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			s.Firewall.LibvirtChains, s.Firewall.Masquerade = nil, nil
			s.Firewall.Flows[0] = snapshot.Flow{Network: "default", Kind: "egress", Verdict: snapshot.VerdictAccept, Chain: "FORWARD", Rule: "policy ACCEPT of FORWARD"}
		}, codes: []Code{CodeLibvirtRulesMissing}, healthy: ptr(false),
			finding: &want{code: CodeLibvirtRulesMissing, sev: SeverityError, subject: "host",
				evidence: []string{"missing_chains=LIBVIRT_INP,LIBVIRT_OUT,LIBVIRT_FWI,LIBVIRT_FWO,LIBVIRT_FWX,LIBVIRT_PRT", "libvirt_nftable=false"},
				fix:      "kvmnetctl host fix --only libvirt_rules_missing"}},
		{name: "libvirt_rules_missing (chains refilled but unhooked, as after iptables -F + network restart)", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			s.Firewall.LibvirtUnhooked = []string{"filter/LIBVIRT_FWX", "filter/LIBVIRT_FWI", "filter/LIBVIRT_FWO", "nat/LIBVIRT_PRT"}
			s.Firewall.Flows[0] = snapshot.Flow{Network: "default", Kind: "egress", Verdict: snapshot.VerdictAccept, Chain: "FORWARD", Rule: "policy ACCEPT of FORWARD"}
		}, codes: []Code{CodeLibvirtRulesMissing}, healthy: ptr(false),
			finding: &want{code: CodeLibvirtRulesMissing, sev: SeverityError, subject: "host",
				evidence: []string{"missing_chains=LIBVIRT_FWX,LIBVIRT_FWI,LIBVIRT_FWO,LIBVIRT_PRT",
					"libvirt_unhooked=filter/LIBVIRT_FWX,filter/LIBVIRT_FWI,filter/LIBVIRT_FWO,nat/LIBVIRT_PRT"},
				fix: "kvmnetctl host fix --only libvirt_rules_missing"}},
		{name: "ufw_routed_blocked: ping works, HTTP fails", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			s.Firewall.UFW = snapshot.UFW{Enabled: true, DefaultRouted: "deny"}
			s.Firewall.ForwardPolicy = "DROP"
			s.Firewall.Flows[0] = snapshot.Flow{Network: "default", Kind: "egress", Verdict: snapshot.VerdictDrop, Chain: "FORWARD",
				Rule: "policy DROP of FORWARD", Trace: []string{"FORWARD", "ufw-before-forward", "ufw-user-forward", "policy DROP"}}
			s.Guests[0].Checks[3] = result("egress-tcp-v4", tcp, v4, "deb.debian.org:80", false, "i/o timeout")
			s.Guests[0].Checks[3].Address = "151.101.2.132:80"
		}, codes: []Code{CodeUFWRoutedBlocked, CodeGuestEgressBlocked}, healthy: ptr(false),
			finding: &want{code: CodeUFWRoutedBlocked, sev: SeverityError, subject: "network default",
				evidence: []string{"verdict=drop", "rule=policy DROP of FORWARD", "trace=FORWARD > ufw-before-forward > ufw-user-forward > policy DROP"},
				summary:  []string{"ping to the host works, apt/HTTP fails"},
				fix:      "ufw route allow in on virbr0 out on eth0"}},
		{name: "ufw_routed_blocked: not evaluated, nftables libvirt", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			s.Firewall.UFW = snapshot.UFW{Enabled: true, DefaultRouted: "deny"}
			s.Firewall.LibvirtChains, s.Firewall.LibvirtNFTable, s.Firewall.Flows = nil, true, nil
		}, codes: []Code{CodeUFWRoutedBlocked},
			finding: &want{code: CodeUFWRoutedBlocked, sev: SeverityWarning, evidence: []string{"evaluated=false", "ufw_default_routed=deny"}}},
		{name: "ufw route allow present: no finding", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			s.Firewall.UFW = snapshot.UFW{Enabled: true, DefaultRouted: "deny", RouteAllows: []string{"in on virbr0 out on eth0"}}
			s.Firewall.LibvirtChains, s.Firewall.LibvirtNFTable, s.Firewall.Flows = nil, true, nil
		}, codes: nil},
		{name: "forward_policy_drop (Docker)", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			s.Firewall.Docker, s.Firewall.ForwardPolicy = true, "DROP"
			s.Firewall.Flows[0] = snapshot.Flow{Network: "default", Kind: "egress", Verdict: snapshot.VerdictDrop, Chain: "FORWARD", Rule: "policy DROP of FORWARD"}
		}, codes: []Code{CodeForwardPolicyDrop}, healthy: ptr(false),
			finding: &want{code: CodeForwardPolicyDrop, sev: SeverityError, subject: "network default",
				evidence: []string{"docker=true", "forward_policy=DROP"}, summary: []string{"set by docker"}, fix: "DOCKER-USER"}},
		{name: "ufw_routed_blocked: return path, several probes give one finding", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			s.Firewall.ForwardPolicy, s.Firewall.ForwardPolicySetBy = "DROP", "ufw"
			drop := snapshot.Flow{Network: "default", Verdict: snapshot.VerdictDrop, Chain: "filter/FORWARD", Rule: "policy DROP of FORWARD"}
			ret := drop
			ret.Kind = "return"
			e80, e443 := drop, drop
			e80.Kind, e443.Kind = "egress", "egress"
			s.Firewall.Flows = append(s.Firewall.Flows, ret, e443)
			s.Firewall.Flows[0] = e80
		}, codes: []Code{CodeUFWRoutedBlocked},
			finding: &want{code: CodeUFWRoutedBlocked, sev: SeverityError}},
		{name: "forward_policy_drop: bridged guests, not evaluated", base: healthyBridged, mutate: func(s *snapshot.Snapshot) {
			s.Firewall.Docker, s.Firewall.ForwardPolicy, s.Firewall.Flows = true, "DROP", nil
		}, codes: []Code{CodeForwardPolicyDrop},
			finding: &want{code: CodeForwardPolicyDrop, sev: SeverityWarning, summary: []string{"br_netfilter"}}},
		{name: "firewall_egress_blocked: explicit DROP rule", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			s.Firewall.Flows[0] = snapshot.Flow{Network: "default", Kind: "egress", Verdict: snapshot.VerdictDrop, Chain: "FORWARD",
				Rule: "-A FORWARD -s 192.168.122.0/24 -j DROP"}
		}, codes: []Code{CodeFirewallEgressBlocked},
			finding: &want{code: CodeFirewallEgressBlocked, sev: SeverityError, evidence: []string{"rule=-A FORWARD -s 192.168.122.0/24 -j DROP"}}},
		// The bridge tutorial moved the uplink into br0: libvirt's rules still say -o up0.
		{name: "network_forward_dev_mismatch: routed dev now a bridge port", base: healthyRouted, mutate: func(s *snapshot.Snapshot) {
			s.Networks[0].ForwardDev = "up0"
			s.Host.Uplink = "br0"
			s.Host.Bridges = append(s.Host.Bridges, bridge("br0", "203.0.113.2/24", "up0"))
			s.Firewall.Flows[0] = snapshot.Flow{Network: "routed", Kind: "egress", Verdict: snapshot.VerdictReject, Chain: "iptables-nft filter LIBVIRT_FWO",
				Rule: "-A LIBVIRT_FWO -i virbr3 -j REJECT --reject-with icmp-port-unreachable"}
		}, codes: []Code{CodeNetworkForwardDevMismatch},
			finding: &want{code: CodeNetworkForwardDevMismatch, sev: SeverityError, evidence: []string{"forward_dev=up0", "uplink=br0"},
				summary: []string{"up0 is now a port of bridge br0"}, fix: "virsh net-edit routed: <forward mode='route' dev='br0'/>"}},
		{name: "firewall_egress_blocked: forward dev matches, a foreign REJECT", base: healthyRouted, mutate: func(s *snapshot.Snapshot) {
			s.Networks[0].ForwardDev = "eth0"
			s.Firewall.Flows[0] = snapshot.Flow{Network: "routed", Kind: "egress", Verdict: snapshot.VerdictReject, Chain: "iptables-nft filter FORWARD",
				Rule: "-A FORWARD -s 192.168.100.0/24 -j REJECT"}
		}, codes: []Code{CodeFirewallEgressBlocked},
			finding: &want{code: CodeFirewallEgressBlocked, sev: SeverityError}},
		{name: "host_dhcp_dns_blocked (UFW input)", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			s.Firewall.Flows[2] = snapshot.Flow{Network: "default", Kind: "dns", Verdict: snapshot.VerdictDrop, Chain: "ufw-user-input", Rule: "policy DROP of INPUT (ufw)"}
		}, codes: []Code{CodeHostDHCPDNSBlocked},
			finding: &want{code: CodeHostDHCPDNSBlocked, sev: SeverityError, fix: "ufw allow in on virbr0"}},
		{name: "firewalld_zone_missing", base: healthyNAT, mutate: func(s *snapshot.Snapshot) { s.Firewall.Firewalld.Running = true },
			codes: []Code{CodeFirewalldZoneMissing}, healthy: ptr(false),
			finding: &want{code: CodeFirewalldZoneMissing, sev: SeverityError, subject: "host", evidence: []string{"libvirt_zone=false"}}},
		{name: "firewalld_zone_missing: bridge in the default zone, DHCP rejected", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			s.Firewall.Firewalld = snapshot.Firewalld{Running: true, LibvirtZone: true, DefaultZone: "public", InterfaceZones: map[string]string{"virbr0": "public"}}
			s.Firewall.Flows[2] = snapshot.Flow{Network: "default", Kind: "dhcp", Verdict: snapshot.VerdictReject, Chain: "nftables inet firewalld filter_IN_public",
				Rule: "reject", FirewalldZone: "public"}
			s.Firewall.Flows[0] = snapshot.Flow{Network: "default", Kind: "egress", Verdict: snapshot.VerdictReject, Chain: "nftables inet firewalld filter_FWD_public",
				Rule: "reject", FirewalldZone: "public"}
		}, codes: []Code{CodeFirewalldZoneMissing}, healthy: ptr(false),
			finding: &want{code: CodeFirewalldZoneMissing, sev: SeverityError, subject: "host", summary: []string{"out of libvirt's zone: virbr0 (network default) is in zone public", "DHCP reject in zone public"},
				fix: "host fix --only firewalld_zone_missing", evidence: []string{"libvirt_zone=true", "bridge_zones=virbr0:public", "networks=default"}}},
		{name: "firewalld_policy_reject_forward", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			s.Firewall.Firewalld = snapshot.Firewalld{Running: true, LibvirtZone: true, DefaultZone: "public", InterfaceZones: map[string]string{"virbr0": "libvirt"},
				Policies: []snapshot.FirewalldPolicy{{Name: "no-guests-out", Target: "REJECT", Priority: -1, Ingress: []string{"libvirt"}, Egress: []string{"ANY"}, Active: true,
					File: "/etc/firewalld/policies/no-guests-out.xml"}}}
			s.Firewall.Flows[0] = snapshot.Flow{Network: "default", Kind: "egress", Verdict: snapshot.VerdictReject, Chain: "nftables inet firewalld filter_FWD_policy_no-guests-out",
				Rule: "reject", FirewalldPolicy: "no-guests-out"}
		}, codes: []Code{CodeFirewalldPolicyRejectForward}, healthy: ptr(false),
			finding: &want{code: CodeFirewalldPolicyRejectForward, sev: SeverityError, subject: "network default",
				summary: []string{"firewalld policy no-guests-out (target REJECT, priority -1, ingress libvirt, egress ANY) rejects"},
				fix:     "host fix --only firewalld_policy_reject_forward", evidence: []string{"firewalld_policy=no-guests-out", "bridge_zone=libvirt"}}},
		{name: "firewall_unreadable", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			s.Firewall = snapshot.Firewall{Read: false, Error: "iptables-save: permission denied"}
		}, codes: []Code{CodeFirewallUnreadable}, healthy: ptr(true),
			finding: &want{code: CodeFirewallUnreadable, sev: SeverityInfo, evidence: []string{"error=iptables-save: permission denied"}}},
		{name: "dnsmasq_down: not running", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			s.Host.Dnsmasq["default"] = snapshot.DnsmasqStatus{Checked: true, Evidence: "pidfile=/run/libvirt/network/default.pid pid_alive=false"}
		}, codes: []Code{CodeDnsmasqDown}, healthy: ptr(false),
			finding: &want{code: CodeDnsmasqDown, sev: SeverityError, subject: "network default", evidence: []string{"running=false", "pid_alive=false"}}},
		{name: "dnsmasq_down: not answering DNS", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			s.Host.Dnsmasq["default"] = snapshot.DnsmasqStatus{Checked: true, Running: true, PID: 99}
		}, codes: []Code{CodeDnsmasqDown},
			finding: &want{code: CodeDnsmasqDown, sev: SeverityError, summary: []string{"does not answer DNS on 192.168.122.1:53"}}},

		// Guest codes.
		{name: "guest_nic_link_down (host side)", base: healthyNAT, mutate: func(s *snapshot.Snapshot) { s.Domains[0].NICs[0].LinkState = "down" },
			codes: []Code{CodeGuestNICLinkDown}, healthy: ptr(false),
			finding: &want{code: CodeGuestNICLinkDown, sev: SeverityError, subject: "guest vm1/" + mac1,
				evidence: []string{"side=host", "vnet=vnet0"}, fix: "virsh domif-setlink vm1 vnet0 up"}},
		{name: "guest_nic_link_down (guest side)", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			firstIface(s).OperState, firstIface(s).Carrier = "down", false
		}, codes: []Code{CodeGuestNICLinkDown},
			finding: &want{code: CodeGuestNICLinkDown, sev: SeverityError, evidence: []string{"side=guest", "ifname=enp1s0"}}},
		{name: "guest_nic_detached", base: healthyNAT, mutate: func(s *snapshot.Snapshot) { s.Host.Bridges[0].Ports = nil },
			codes:   []Code{CodeGuestNICDetached},
			finding: &want{code: CodeGuestNICDetached, sev: SeverityError, fix: "ip link set dev vnet0 master virbr0"}},
		{name: "guest_nic_not_seen", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			firstIface(s).Mac = "52:54:00:99:99:99"
			gst(s).NetworkManager.Profiles = nil
		},
			codes:   []Code{CodeGuestNICNotSeen},
			finding: &want{code: CodeGuestNICNotSeen, sev: SeverityError, evidence: []string{"guest_interfaces=enp1s0=52:54:00:99:99:99"}}},
		{name: "guest_no_ipv4", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			firstIface(s).Ipv4 = nil
			noDefaultRoute(s)
			gst(s).NetworkManager.Profiles = nil
			s.Networks[0].Leases = nil
		}, codes: []Code{CodeGuestNoIPv4}, healthy: ptr(false),
			finding: &want{code: CodeGuestNoIPv4, sev: SeverityError, subject: "guest vm1/" + mac1,
				evidence: []string{"ifname=enp1s0", "lease=none", "profiles=none"}, fix: "kvmnetctl guests fix vm1 --nic " + mac1}},
		{name: "guest_no_lease: host only (agent down, no neighbour entry)", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			s.Guests[0] = snapshot.Guest{Domain: "vm1", Transport: snapshot.TransportVirtioSerial, Address: "serial:/x.sock", Error: "context deadline exceeded"}
			s.Networks[0].Leases = nil
		}, codes: []Code{CodeGuestAgentUnreachable, CodeGuestNoLease}, healthy: ptr(false),
			finding: &want{code: CodeGuestNoLease, sev: SeverityError, subject: "guest vm1/" + mac1,
				evidence: []string{"lease=none", "neighbor_ipv4=none"}, fix: "start kvmnet-agent in the guest, then kvmnetctl guests fix vm1"}},
		{name: "guest_no_lease: no agent, neighbour entry says static", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			s.Domains[0].Channels = s.Domains[0].Channels[1:]
			s.Guests = []snapshot.Guest{{Domain: "vm1", Transport: snapshot.TransportNone}}
			s.Networks[0].Leases = nil
			s.Host.Bridges[0].Neighbors = []snapshot.Neighbor{{IP: "192.168.122.9", MAC: mac1, State: "stale"}}
		}, codes: []Code{CodeGuestAgentMissingChannel, CodeGuestNoLease},
			finding: &want{code: CodeGuestNoLease, sev: SeverityWarning, evidence: []string{"neighbor_ipv4=192.168.122.9"},
				fix: "kvmnetctl guests enable-channel vm1"}},
		{name: "guest_no_lease: DHCP address without libvirt lease", base: healthyNAT, mutate: func(s *snapshot.Snapshot) { s.Networks[0].Leases = nil },
			codes:   []Code{CodeGuestNoLease},
			finding: &want{code: CodeGuestNoLease, sev: SeverityWarning, evidence: []string{"dynamic=true"}}},
		{name: "no lease data from the driver: nothing judged", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			s.Networks[0].Leases, s.Networks[0].LeasesSupported = nil, false
		}, codes: nil},
		{name: "guest_ip_lease_mismatch", base: healthyNAT, mutate: func(s *snapshot.Snapshot) { s.Networks[0].Leases[0].IP = "192.168.122.77" },
			codes:   []Code{CodeGuestIPLeaseMismatch},
			finding: &want{code: CodeGuestIPLeaseMismatch, sev: SeverityWarning, evidence: []string{"lease_ipv4=192.168.122.77", "guest_ipv4=192.168.122.50/24"}}},
		{name: "guest_static_wrong_subnet", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			it := firstIface(s)
			it.Ipv4, it.Ipv4Dynamic = []string{"10.0.0.5/24"}, false
			gst(s).NetworkManager.Profiles = []*kvmnetv1.Profile{{Id: "static", Type: "802-3-ethernet", InterfaceName: "enp1s0",
				Ipv4Method: "manual", Ipv4Addresses: []string{"10.0.0.5/24"}, Active: true, ActiveDevice: "enp1s0"}}
			s.Networks[0].Leases = nil
			s.Guests[0].Checks = nil
		}, codes: []Code{CodeGuestStaticWrongSubnet}, healthy: ptr(false),
			finding: &want{code: CodeGuestStaticWrongSubnet, sev: SeverityError,
				summary: []string{"10.0.0.5/24", "192.168.122.0/24", `"static" (ipv4.method=manual 10.0.0.5/24, active)`}, fix: "switches the NIC to DHCP"}},
		{name: "guest_static_wrong_subnet: host only, from the neighbour table", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			s.Guests[0] = snapshot.Guest{Domain: "vm1", Transport: snapshot.TransportVirtioSerial, Error: "connection refused"}
			s.Networks[0].Leases = nil
			s.Host.Bridges[0].Neighbors = []snapshot.Neighbor{{IP: "10.0.0.5", MAC: mac1, State: "reachable"}}
		}, codes: []Code{CodeGuestAgentUnreachable, CodeGuestStaticWrongSubnet},
			finding: &want{code: CodeGuestStaticWrongSubnet, sev: SeverityError, evidence: []string{"neighbor_ipv4=10.0.0.5"}}},
		{name: "guest_profile_wrong_interface: eth0 profile, NIC is enp1s0 and has no IPv4", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			firstIface(s).Ipv4 = nil
			noDefaultRoute(s)
			s.Networks[0].Leases = nil
			gst(s).NetworkManager.Profiles = []*kvmnetv1.Profile{{Id: "Wired connection 1", Uuid: "w1", Type: "802-3-ethernet",
				InterfaceName: "eth0", Ipv4Method: "auto", Autoconnect: true, BoundToMissingInterface: true}}
		}, codes: []Code{CodeGuestNoIPv4, CodeGuestProfileWrongInterface}, healthy: ptr(false),
			finding: &want{code: CodeGuestProfileWrongInterface, sev: SeverityError, subject: "guest vm1/" + mac1,
				evidence: []string{"profile=Wired connection 1", "interface_name=eth0", "guest_interfaces=enp1s0"},
				summary:  []string{"bound to interface-name eth0"}, fix: "kvmnetctl guests fix vm1 --nic " + mac1}},
		{name: "guest_profile_name_taken: someone else's kvm-dhcp-enp1s0, NIC works", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			gst(s).NetworkManager.Profiles = append(gst(s).NetworkManager.Profiles, &kvmnetv1.Profile{Id: "kvm-dhcp-enp1s0", Uuid: "f0", Type: "802-3-ethernet",
				InterfaceName: "enp1s0", Ipv4Method: "auto", NameConflict: `id "kvm-dhcp-enp1s0" is the name kvmnet gives its own profile for enp1s0, but ...`})
		}, codes: []Code{CodeGuestProfileNameTaken}, healthy: ptr(true),
			finding: &want{code: CodeGuestProfileNameTaken, sev: SeverityWarning, subject: "guest vm1/" + mac1,
				evidence: []string{"profile=kvm-dhcp-enp1s0", "uuid=f0", "managed_by_kvmnet=false", "side=guest"},
				summary:  []string{"was not made by kvmnet"},
				fix:      "nmcli connection modify f0 connection.id NEW-NAME"}},
		{name: "guest_profile_name_taken: the NIC's DHCP fix needs the consent flag", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			firstIface(s).Ipv4 = nil
			noDefaultRoute(s)
			s.Networks[0].Leases = nil
			gst(s).NetworkManager.Profiles = []*kvmnetv1.Profile{{Id: "kvm-dhcp-enp1s0", Uuid: "f0", Type: "802-3-ethernet",
				InterfaceName: "enp1s0", Ipv4Method: "manual", Ipv4Addresses: []string{"10.9.9.9/24"}, NameConflict: "someone else's"}}
		}, codes: []Code{CodeGuestNoIPv4, CodeGuestProfileNameTaken}, healthy: ptr(false),
			finding: &want{code: CodeGuestNoIPv4, sev: SeverityError, subject: "guest vm1/" + mac1,
				fix: "kvmnetctl guests fix vm1 --nic " + mac1 + " --replace-foreign-profile"}},
		{name: "guest_profile_wrong_interface: the agent's bound_to_missing_interface decides (one owner)", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			gst(s).NetworkManager.Profiles = append(gst(s).NetworkManager.Profiles,
				&kvmnetv1.Profile{Id: "old", Type: "802-3-ethernet", InterfaceName: "ens3", Ipv4Method: "auto"},
				&kvmnetv1.Profile{Id: "by-mac", Type: "802-3-ethernet", Mac: "52:54:00:99:99:99", Ipv4Method: "auto", BoundToMissingInterface: true})
		}, codes: []Code{CodeGuestProfileWrongInterface},
			finding: &want{code: CodeGuestProfileWrongInterface, sev: SeverityWarning, subject: "guest vm1",
				summary: []string{`"by-mac"`, "bound to mac 52:54:00:99:99:99"}}},
		{name: "guest_no_default_route", base: healthyNAT, mutate: noDefaultRoute,
			codes:   []Code{CodeGuestNoDefaultRoute},
			finding: &want{code: CodeGuestNoDefaultRoute, sev: SeverityError, evidence: []string{"gateway=192.168.122.1"}}},
		{name: "guest_gateway_unreachable", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			s.Guests[0].Checks[0] = result("gateway-v4", ping, v4, "", false, "100% packet loss")
		}, codes: []Code{CodeGuestGatewayUnreachable},
			finding: &want{code: CodeGuestGatewayUnreachable, sev: SeverityError, evidence: []string{"gateway_ok=false", "gateway_error=100% packet loss"}}},
		{name: "guest_ipv6_unroutable: global IPv6, NAT network without IPv6 (apt already IPv4)", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			gst(s).Ipv6 = &kvmnetv1.IPv6State{HasGlobalAddress: true}
			firstIface(s).Ipv6 = append(firstIface(s).Ipv6, "2001:db8::50/64")
			gst(s).PackageManager.AptForceIpv4 = kvmnetv1.ConfigFileState_CONFIG_FILE_STATE_KVMNET
		}, codes: []Code{CodeGuestIPv6Unroutable},
			finding: &want{code: CodeGuestIPv6Unroutable, sev: SeverityWarning,
				summary: []string{`network "default" has no IPv6`, "the host has no IPv6 default route"}, fix: "disables IPv6"}},
		{name: "guest_ipv6_unroutable: IPv6 hangs (checks)", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			gst(s).Ipv6 = &kvmnetv1.IPv6State{HasGlobalAddress: true, HasDefaultRoute: true, Usable: true}
			s.Networks[0].IPs = append(s.Networks[0].IPs, snapshot.NetworkIP{Family: 6, Address: "fd00::1", Prefix: 64, Subnet: "fd00::/64"})
			s.Host.IPv6DefaultRoute = true
			gst(s).PackageManager.AptForceIpv4 = kvmnetv1.ConfigFileState_CONFIG_FILE_STATE_OTHER
			s.Guests[0].Checks = append(s.Guests[0].Checks, result("egress-tcp-v6", tcp, v6, "deb.debian.org:80", false, "i/o timeout"))
		}, codes: []Code{CodeGuestIPv6Unroutable},
			finding: &want{code: CodeGuestIPv6Unroutable, sev: SeverityError, evidence: []string{"v6_error=i/o timeout"}}},
		{name: "guest_apt_ipv6_risk", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			gst(s).Ipv6 = &kvmnetv1.IPv6State{HasGlobalAddress: true, HasDefaultRoute: true}
		}, codes: []Code{CodeGuestIPv6Unroutable, CodeGuestAptIPv6Risk},
			finding: &want{code: CodeGuestAptIPv6Risk, sev: SeverityWarning, evidence: []string{"apt_force_ipv4=CONFIG_FILE_STATE_ABSENT"},
				fix: "Acquire::ForceIPv4"}},
		{name: "IPv6 disabled in the guest: nothing to say", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			gst(s).Ipv6 = &kvmnetv1.IPv6State{AllDisabled: true, HasGlobalAddress: true}
		}, codes: nil},
		{name: "guest_dns_failure: dnsmasq answers but cannot forward", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			s.Guests[0].Checks[1] = result("dns-v4", dnsK, v4, "deb.debian.org", false, "SERVFAIL")
			s.Guests[0].Checks[3] = result("egress-tcp-v4", tcp, v4, "deb.debian.org:80", false, "lookup deb.debian.org: SERVFAIL")
		}, codes: []Code{CodeGuestDNSFailure}, healthy: ptr(false),
			finding: &want{code: CodeGuestDNSFailure, sev: SeverityError, evidence: []string{"dns_error=SERVFAIL", "servers=192.168.122.1", "gateway_ok=true"},
				summary: []string{"dnsmasq answers on the bridge"}, fix: "<dns><forwarder addr='IP'/></dns>"}},
		{name: "guest_dns_failure: guest asks the wrong server", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			gst(s).Dns.Servers = []string{"10.9.9.9"}
			s.Guests[0].Checks[1] = result("dns-v4", dnsK, v4, "deb.debian.org", false, "i/o timeout")
		}, codes: []Code{CodeGuestDNSFailure},
			finding: &want{code: CodeGuestDNSFailure, sev: SeverityError, summary: []string{"asks 10.9.9.9 instead of the network's DNS server 192.168.122.1"}}},
		{name: "guest_dns_failure: DNS set by hand in the active profile", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			gst(s).Dns.Servers = []string{"192.0.2.53"}
			for _, p := range gst(s).NetworkManager.Profiles {
				if p.Active {
					p.Ipv4Dns, p.Ipv4IgnoreAutoDns = []string{"192.0.2.53"}, true
				}
			}
			s.Guests[0].Checks[1] = result("dns-v4", dnsK, v4, "deb.debian.org", false, "i/o timeout")
		}, codes: []Code{CodeGuestDNSFailure},
			finding: &want{code: CodeGuestDNSFailure, sev: SeverityError, evidence: []string{"side=guest", "dns_override=true", "profile_dns=192.0.2.53", "ignore_auto_dns=true"},
				summary: []string{"sets DNS by hand (ipv4.dns 192.0.2.53, ignore-auto-dns true)"}, fix: "--allow-dns-reset"}},
		{name: "guest_no_ipv4: hot-plugged NIC not yet managed", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			it := gst(s).Interfaces[0]
			it.Ipv4, it.Stack, it.StackDetail = nil, kvmnetv1.NetworkStack_NETWORK_STACK_NETWORK_MANAGER, "nm_device_state=Unmanaged nm_managed=false udev=pending"
		}, codes: []Code{CodeGuestNoIPv4},
			finding: &want{code: CodeGuestNoIPv4, sev: SeverityError, summary: []string{"not yet managed by NetworkManager"}, fix: "waits up to 30 s"}},
		{name: "guest_dns_failure: no nameserver at all", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			gst(s).Dns.Servers = nil
			s.Guests[0].Checks = nil
		}, codes: []Code{CodeGuestDNSFailure},
			finding: &want{code: CodeGuestDNSFailure, sev: SeverityWarning, evidence: []string{"servers=none"}}},
		{name: "guest_egress_blocked: no host-side cause found", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			s.Guests[0].Checks[3] = result("egress-tcp-v4", tcp, v4, "203.0.113.1:80", false, "connection refused")
		}, codes: []Code{CodeGuestEgressBlocked}, healthy: ptr(false),
			finding: &want{code: CodeGuestEgressBlocked, sev: SeverityError, evidence: []string{"egress_target=203.0.113.1:80", "gateway_ok=true", "verdict=accept"},
				summary: []string{"the gateway answers ping but TCP to 203.0.113.1:80 fails"}, fix: "kvmnetctl host check"}},
		{name: "isolated guest with a failing egress check: expected", base: healthyIsolated, mutate: func(s *snapshot.Snapshot) {
			firstIface(s).DefaultRouteV4 = true
			gst(s).Routes = []*kvmnetv1.Route{{Family: 4, Destination: "default", Gateway: "10.10.0.1", Interface: "enp1s0"}}
			s.Guests[0].Checks = []*kvmnetv1.CheckResult{result("gateway-v4", ping, v4, "", true, ""),
				result("egress-tcp-v4", tcp, v4, "203.0.113.1:80", false, "connection refused")}
		}, codes: nil},
		{name: "guest_agent_unreachable", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			s.Guests[0] = snapshot.Guest{Domain: "vm1", Transport: snapshot.TransportVirtioSerial, Address: "serial:/x.sock", Error: "handshake: no echo"}
			s.Domains[0].Channels[0].State = "disconnected"
		}, codes: []Code{CodeGuestAgentUnreachable}, healthy: ptr(true),
			finding: &want{code: CodeGuestAgentUnreachable, sev: SeverityWarning, evidence: []string{"channel_state=disconnected", "error=handshake: no echo"},
				summary: []string{"nothing in the guest has the port open"}}},
		{name: "guest_agent_missing_channel", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			s.Domains[0].Channels = s.Domains[0].Channels[1:]
			s.Guests = nil
		}, codes: []Code{CodeGuestAgentMissingChannel}, healthy: ptr(true),
			finding: &want{code: CodeGuestAgentMissingChannel, sev: SeverityWarning, evidence: []string{"transport=none"}, fix: "kvmnetctl guests enable-channel vm1"}},
		{name: "guest_agent_missing_channel: shut off domain is info", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			s.Domains[0].Channels, s.Domains[0].State, s.Guests = nil, "shut off", nil
		}, codes: []Code{CodeGuestAgentMissingChannel},
			finding: &want{code: CodeGuestAgentMissingChannel, sev: SeverityInfo}},
		{name: "vsock transport counts as a channel", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			s.Domains[0].Channels, s.Domains[0].VsockCID = s.Domains[0].Channels[1:], 5
			s.Guests[0].Transport = snapshot.TransportVsock
		}, codes: nil},
		{name: "qemu_guest_agent_missing: no channel", base: healthyNAT, mutate: func(s *snapshot.Snapshot) { s.Domains[0].Channels = s.Domains[0].Channels[:1] },
			codes:   []Code{CodeQemuGuestAgentMissing},
			finding: &want{code: CodeQemuGuestAgentMissing, sev: SeverityWarning, evidence: []string{"channel=absent"}, fix: "org.qemu.guest_agent.0"}},
		{name: "qemu_guest_agent_missing: not installed", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			gst(s).QemuGuestAgent = &kvmnetv1.QemuGuestAgentState{ChannelPresent: true}
		}, codes: []Code{CodeQemuGuestAgentMissing},
			finding: &want{code: CodeQemuGuestAgentMissing, sev: SeverityWarning, evidence: []string{"installed=false"}}},
		{name: "session_usermode_network", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			s.URI, s.Session, s.Networks = "qemu:///session", true, nil
			s.Domains[0].NICs = []snapshot.DomainNIC{{MAC: mac1, Type: "user", Model: "virtio"}}
			s.Host = snapshot.Host{}
			s.Firewall = snapshot.Firewall{}
			firstIface(s).Ipv4 = []string{"10.0.2.15/24"}
			gst(s).Dns.Servers = []string{"10.0.2.3"}
			s.Guests[0].Checks = nil
		}, codes: []Code{CodeSessionUsermodeNetwork}, healthy: ptr(true),
			finding: &want{code: CodeSessionUsermodeNetwork, sev: SeverityWarning, subject: "guest vm1/" + mac1,
				evidence: []string{"type=user", "uri=qemu:///session"}, summary: []string{"the host cannot reach the guest"}}},
		{name: "channel_socket_exposed: agent accepts Apply", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			s.Domains[0].ChannelAccess = &snapshot.SocketAccess{Path: "/var/lib/libvirt/qemu/channel/target/domain-1-vm1/org.kvmnet.agent.0",
				Owner: "libvirt-qemu", Group: "kvm", Mode: "srwxrwxr-x", Groups: map[string][]string{"kvm": {"bob", "alice"}},
				Evidence: "dir_search=group"}
		}, codes: []Code{CodeChannelSocketExposed}, healthy: ptr(false),
			finding: &want{code: CodeChannelSocketExposed, sev: SeverityError, subject: "guest vm1",
				evidence: []string{"who=group kvm: alice, bob", "allow_apply=true", "dir_search=group"},
				summary:  []string{"group kvm: alice, bob", "change the guest's network as root"}, fix: "kvmnetctl host fix --only channel_socket_exposed"}},
		{name: "channel_socket_exposed: report-only agent is a warning", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			s.Domains[0].ChannelAccess = &snapshot.SocketAccess{Path: "/x.sock", Owner: "root", Group: "root", Mode: "srwxrwxrwx", Everyone: true}
			gst(s).Config.AllowApply = false
		}, codes: []Code{CodeChannelSocketExposed}, healthy: ptr(true),
			finding: &want{code: CodeChannelSocketExposed, sev: SeverityWarning, evidence: []string{"who=everyone", "allow_apply=false"}}},
		{name: "channel_socket_exposed: agent down, assume Apply allowed", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			s.Domains[0].ChannelAccess = &snapshot.SocketAccess{Path: "/x.sock", Mode: "srwxrwxr-x", Users: []string{"carol"}}
			s.Guests[0] = snapshot.Guest{Domain: "vm1", Transport: snapshot.TransportVirtioSerial, Error: "refused"}
		}, codes: []Code{CodeChannelSocketExposed, CodeGuestAgentUnreachable},
			finding: &want{code: CodeChannelSocketExposed, sev: SeverityError, evidence: []string{"who=user carol", "allow_apply=unknown"}}},
		{name: "channel socket not exposed: no finding", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			s.Domains[0].ChannelAccess = &snapshot.SocketAccess{Path: "/var/lib/kvmnet/channels/vm1.sock", Owner: "libvirt-qemu", Mode: "srwxrwxr-x"}
		}, codes: nil},

		// Multi-NIC guests.
		{name: "multi-NIC: second NIC without IPv4 is named by its MAC", base: multiNIC, mutate: func(s *snapshot.Snapshot) {
			gst(s).Interfaces[0].Ipv4 = nil
			s.Networks[1].Leases = nil
		}, codes: []Code{CodeGuestNoIPv4}, healthy: ptr(false),
			finding: &want{code: CodeGuestNoIPv4, sev: SeverityError, subject: "guest vm1/" + mac2, evidence: []string{"ifname=enp2s0", "network=isolated"}}},
		{name: "no kvmnet agent, qemu-guest-agent answers: its interfaces are judged", base: healthyNAT, mutate: func(s *snapshot.Snapshot) {
			*s = qgaGuest([]snapshot.QGAInterface{{Name: "enp1s0", MAC: mac1}}, "")
		}, codes: []Code{CodeKvmnetAgentMissing, CodeGuestNoIPv4}, healthy: ptr(false),
			finding: &want{code: CodeKvmnetAgentMissing, sev: SeverityWarning, subject: "guest vm1", evidence: []string{"agent=qga", "os=Debian GNU/Linux 12 (bookworm)"},
				fix: "kvmnetctl guests install-agent vm1"}},
		{name: "multi-NIC: host cause on one network only", base: multiNIC, mutate: func(s *snapshot.Snapshot) { s.Networks[1].Active = false },
			codes: []Code{CodeNetworkInactive}, healthy: ptr(false),
			finding: &want{code: CodeNetworkInactive, sev: SeverityError, subject: "network isolated"}},
	}
}

func TestDiagnose(t *testing.T) {
	seen := map[Code]bool{}
	for _, tc := range append(cases(), bridgedCases()...) {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.base()
			if tc.mutate != nil {
				tc.mutate(&s)
			}
			r := Diagnose(s)
			all := r.All()
			if got := Codes(all); !slices.Equal(got, tc.codes) {
				for _, f := range all {
					t.Logf("%s %s [%s] %s | fix: %s | %v", f.Severity, f.Code, f.Subject, f.Summary, f.Fix, f.Evidence)
				}
				t.Fatalf("codes = %v, want %v", got, tc.codes)
			}
			for _, f := range all {
				seen[f.Code] = true
				checkAgainstCatalogue(t, f)
				if f.Summary == "" || f.Fix == "" || f.Subject == "" || len(f.Evidence) == 0 || strings.Contains(f.Summary, "\n") {
					t.Errorf("finding %s lacks summary/fix/subject/evidence or is multi-line: %+v", f.Code, f)
				}
			}
			if tc.healthy != nil {
				g, ok := r.Guest("vm1")
				if !ok {
					t.Fatal("no report for vm1")
				}
				if g.Healthy != *tc.healthy {
					t.Errorf("vm1 healthy = %v, want %v (host causes %v, findings %v)", g.Healthy, *tc.healthy, g.HostCauses, Codes(g.Findings))
				}
			}
			if tc.finding == nil {
				return
			}
			w := tc.finding
			var f *Finding
			for i := range all {
				if all[i].Code == w.code && (w.subject == "" || all[i].Subject == w.subject) {
					f = &all[i]
					break
				}
			}
			if f == nil {
				t.Fatalf("no %s finding with subject %q", w.code, w.subject)
			}
			if f.Severity != w.sev {
				t.Errorf("severity = %s, want %s", f.Severity, w.sev)
			}
			for _, e := range w.evidence {
				if !slices.Contains(f.Evidence, e) {
					t.Errorf("evidence lacks %q: %v", e, f.Evidence)
				}
			}
			for _, sub := range w.summary {
				if !strings.Contains(f.Summary, sub) {
					t.Errorf("summary lacks %q: %s", sub, f.Summary)
				}
			}
			if !strings.Contains(f.Fix, w.fix) {
				t.Errorf("fix lacks %q: %s", w.fix, f.Fix)
			}
		})
	}
	// Every code of the catalogue has a case that raises it.
	for _, c := range Catalogue() {
		if !seen[c.Code] {
			t.Errorf("no test case raises %s", c.Code)
		}
	}
}

// TestCorrelationRows proves the rows match guest interfaces by MAC, not by order, and carry the
// host-only facts when there is no agent.
func TestCorrelationRows(t *testing.T) {
	r := Diagnose(multiNIC())
	g, _ := r.Guest("vm1")
	if len(g.NICs) != 2 {
		t.Fatalf("want 2 NIC rows, got %d", len(g.NICs))
	}
	want := []NICReport{
		{MAC: mac1, Network: "default", Bridge: "virbr0", GuestIfname: "enp1s0", GuestIPv4: []string{"192.168.122.50/24"}, LeaseIPv4: "192.168.122.50",
			LeaseSource: "libvirt", Type: "network", Forward: "nat", Vnet: "vnet0", LinkState: "up", GuestOperState: "up", IPv6: "link-local",
			AptIPv4: "not forced", Checks: "gw=ok dns=ok dnsmasq=ok egress=ok"},
		{MAC: mac2, Network: "isolated", Bridge: "virbr1", GuestIfname: "enp2s0", GuestIPv4: []string{"10.10.0.30/24"}, LeaseIPv4: "10.10.0.30",
			LeaseSource: "libvirt", Type: "network", Forward: "isolated", Vnet: "vnet1", LinkState: "up", GuestOperState: "up", IPv6: "link-local",
			AptIPv4: "not forced", Checks: "-"},
	}
	for i := range want {
		got := g.NICs[i]
		if got.MAC != want[i].MAC || got.GuestIfname != want[i].GuestIfname || got.LeaseIPv4 != want[i].LeaseIPv4 ||
			!slices.Equal(got.GuestIPv4, want[i].GuestIPv4) || got.Checks != want[i].Checks || got.IPv6 != want[i].IPv6 ||
			got.AptIPv4 != want[i].AptIPv4 || got.Vnet != want[i].Vnet || got.Forward != want[i].Forward || got.LeaseSource != want[i].LeaseSource {
			t.Errorf("row %d:\n got %+v\nwant %+v", i, got, want[i])
		}
	}

	// Bridged: the "lease" column comes from the neighbour table.
	r = Diagnose(healthyBridged())
	g, _ = r.Guest("vm1")
	if n := g.NICs[0]; n.LeaseIPv4 != "192.168.1.50" || n.LeaseSource != "neighbour" {
		t.Errorf("bridged row lease = %q (%s), want 192.168.1.50 from neighbour", n.LeaseIPv4, n.LeaseSource)
	}

	// No agent: host facts still there, guest columns empty, agent none.
	s := healthyNAT()
	s.Domains[0].Channels = nil
	s.Guests = nil
	g, _ = Diagnose(s).Guest("vm1")
	n := g.NICs[0]
	if g.Agent.Transport != "none" || g.Agent.Reachable || n.LeaseIPv4 != "192.168.122.50" || n.GuestIfname != "" || n.IPv6 != "unknown" || len(n.GuestIPv4) != 0 {
		t.Errorf("host-only row wrong: agent %+v nic %+v", g.Agent, n)
	}
}

func TestOnlyGuestsAndHostFindings(t *testing.T) {
	s := healthyNAT()
	s.Domains = append(s.Domains, domain("vm2"))
	s.Domains[0].ChannelAccess = &snapshot.SocketAccess{Path: "/x", Everyone: true}
	s.Host.IPForward = false
	r := Diagnose(s)
	only, missing := r.OnlyGuests("vm2", "nope")
	if len(only.Guests) != 1 || only.Guests[0].Name != "vm2" || !slices.Equal(missing, []string{"nope"}) {
		t.Fatalf("OnlyGuests = %v, missing %v", only.Guests, missing)
	}
	if got := Codes(r.HostFindings()); !slices.Equal(got, []Code{CodeIPForwardOff, CodeChannelSocketExposed}) {
		t.Errorf("HostFindings codes = %v", got)
	}
	if !r.HasErrors() || r.GuestsHealthy() {
		t.Errorf("HasErrors=%v GuestsHealthy=%v, want true,false", r.HasErrors(), r.GuestsHealthy())
	}
	if f := r.Host.Findings[0]; f.Domain != "" || f.Network != "" {
		t.Errorf("host finding carries domain/network: %+v", f)
	}
	g, _ := r.Guest("vm1")
	if v, ok := g.Findings[0].Get("who"); !ok || v != "everyone" {
		t.Errorf("Get(who) = %q,%v", v, ok)
	}
}

func TestSuggestRange(t *testing.T) {
	for _, tc := range []struct{ subnet, start, end string }{
		{"192.168.122.0/24", "192.168.122.2", "192.168.122.254"},
		{"10.0.0.0/16", "10.0.0.2", "10.0.255.254"},
		{"10.1.2.0/30", "<START>", "<END>"},
	} {
		n := snapshot.Network{IPs: []snapshot.NetworkIP{{Family: 4, Subnet: tc.subnet}}}
		if s, e := suggestRange(&n); s != tc.start || e != tc.end {
			t.Errorf("%s: %s-%s, want %s-%s", tc.subnet, s, e, tc.start, tc.end)
		}
	}
}

func TestBridgeState(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    snapshot.Bridge
		want string
	}{
		{"up with ports", snapshot.Bridge{AdminUp: true, OperState: "up", Ports: []string{"vnet0"}}, "up"},
		{"up without ports", snapshot.Bridge{AdminUp: true, OperState: "down"}, "no-carrier"},
		{"ports but no carrier", snapshot.Bridge{AdminUp: true, OperState: "down", Ports: []string{"vnet0"}}, "down"},
		{"admin down", snapshot.Bridge{OperState: "down"}, "down"},
	} {
		if got := bridgeState(tc.b); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestAgentNotAnswering: an agent that took the connection and then stayed silent is hung or
// overloaded (retry, look at the guest), one that never took it is missing (install it); neither
// guest is called healthy.
func TestAgentNotAnswering(t *testing.T) {
	for _, tc := range []struct {
		name       string
		connected  bool
		evidence   string
		fixHas     string
		fixHasNot  string
		summaryHas string
	}{
		{"port closed", false, "agent=not_running", "install and start kvmnet-agent", "--timeout", "does not take connections"},
		{"connected, no answer", true, "agent=no_answer", "--timeout 30s", "install", "took the connection"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := healthyNAT()
			g := &s.Guests[0]
			g.Reachable, g.State, g.Checks = false, nil, nil
			g.Connected, g.TimedOut, g.Error = tc.connected, tc.connected, "no answer within 10s: context deadline exceeded"
			r := Diagnose(s)
			gr := r.Guests[0]
			var f Finding
			for _, x := range gr.Findings {
				if x.Code == CodeGuestAgentUnreachable {
					f = x
				}
			}
			if f.Code == "" {
				t.Fatalf("no %s in %v", CodeGuestAgentUnreachable, Codes(gr.Findings))
			}
			if !slices.Contains(f.Evidence, tc.evidence) || !strings.Contains(f.Fix, tc.fixHas) || strings.Contains(f.Fix, tc.fixHasNot) ||
				!strings.Contains(f.Summary, tc.summaryHas) {
				t.Errorf("finding %+v", f)
			}
			if gr.Health != HealthUnknown || !gr.Healthy {
				t.Errorf("health %q healthy=%v, want unknown (no error found, nothing seen inside)", gr.Health, gr.Healthy)
			}
		})
	}
}
