package diagnose

import (
	"github.com/kvmnet/kvmnet/controller/snapshot"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// healthyHostBridge is the Debian server tutorial's setup: no libvirt network, br0 carries the
// host's LAN address with eth0 enslaved, vm1 is <interface type='bridge'><source bridge='br0'/>,
// br_netfilter is on (a new namespace's default) and the FORWARD hook accepts its frames.
func healthyHostBridge() snapshot.Snapshot {
	br := bridge("br0", "192.168.1.10/24", "eth0", "vnet0")
	br.STP = false
	br.PortInfo = []snapshot.BridgePort{
		{Name: "eth0", Kind: "device", OperState: "up", AdminUp: true, STPState: "forwarding"},
		{Name: "vnet0", Kind: "tuntap", OperState: "up", AdminUp: true, STPState: "forwarding"},
	}
	st := guestState([]*kvmnetv1.Interface{iface("ens3", mac1, []string{"192.168.1.50/24"}, true)}, "192.168.1.1", dhcpProfile("ens3", mac1))
	flow := func(kind string, port int, v snapshot.Verdict, rule, chain string) snapshot.Flow {
		return snapshot.Flow{Kind: kind, DPort: port, Verdict: v, Rule: rule, Chain: chain, Backend: "iptables-nft", Bridged: true,
			HostBridge: "br0", Domain: "vm1", MAC: mac1, PhysIn: "vnet0", PhysOut: "eth0", In: "br0", Out: "br0", Proto: "tcp",
			Sysctl: "net.bridge.bridge-nf-call-iptables=1", Description: "bridged new tcp 192.168.1.11 -> LAN port 80 on br0 (vnet0 -> eth0)"}
	}
	s := snapshot.Snapshot{
		URI:     "qemu:///system",
		Domains: []snapshot.Domain{domain("vm1", snapshot.DomainNIC{MAC: mac1, Type: "bridge", Bridge: "br0", Target: "vnet0", Model: "virtio"})},
		Host:    baseHost(br),
		Firewall: snapshot.Firewall{Backend: "iptables-nft", Backends: []string{"iptables-nft"}, Read: true, ForwardPolicy: "ACCEPT",
			Flows: []snapshot.Flow{flow("egress", 80, snapshot.VerdictAccept, "policy ACCEPT of FORWARD", "iptables-nft filter FORWARD"),
				flow("return", 40000, snapshot.VerdictAccept, "policy ACCEPT of FORWARD", "iptables-nft filter FORWARD")}},
		Guests: []snapshot.Guest{{Domain: "vm1", Transport: snapshot.TransportVirtioSerial, Reachable: true, State: st, Checks: okChecks("192.168.1.1")}},
	}
	s.Host.IPForward, s.Host.Uplink = false, "br0"
	s.Host.BridgeNF = snapshot.BridgeNetfilter{Known: true, Loaded: true, CallIPTables: true, CallIP6Tables: true, CallARPTables: true}
	s.Networks = []snapshot.Network{}
	return s
}

// dockerDrop is Docker's FORWARD DROP as the bridged flows meet it with br_netfilter on.
func dockerDrop(s *snapshot.Snapshot) {
	s.Firewall.Docker, s.Firewall.ForwardPolicy, s.Firewall.ForwardPolicySetBy = true, "DROP", "docker"
	for i := range s.Firewall.Flows {
		f := &s.Firewall.Flows[i]
		f.Verdict, f.Rule, f.Chain = snapshot.VerdictDrop, "policy DROP of FORWARD", "iptables-nft filter FORWARD"
	}
}

func bridgedCases() []tcase {
	return []tcase{
		{name: "healthy host bridge (type=bridge, br_netfilter on, FORWARD accepts)", base: healthyHostBridge, codes: nil, healthy: ptr(true)},
		{name: "bridge_netfilter_drop: Docker's FORWARD DROP with bridge-nf-call-iptables=1", base: healthyHostBridge, mutate: dockerDrop,
			codes: []Code{CodeBridgeNetfilterDrop}, healthy: ptr(false),
			finding: &want{code: CodeBridgeNetfilterDrop, sev: SeverityError, subject: "host",
				evidence: []string{"bridge=br0", "sysctl=net.bridge.bridge-nf-call-iptables=1", "physdev_in=vnet0", "physdev_out=eth0", "rule=policy DROP of FORWARD"},
				summary:  []string{"vm1", "br0", "net.bridge.bridge-nf-call-iptables=1", "policy DROP of FORWARD"},
				fix:      "iptables-nft DOCKER-USER"}},
		{name: "bridge_netfilter_drop: legacy world decided, nft holds rules too", base: healthyHostBridge, mutate: func(s *snapshot.Snapshot) {
			dockerDrop(s)
			s.Firewall.Backends = []string{"iptables-nft", "iptables-legacy"}
			for i := range s.Firewall.Flows {
				s.Firewall.Flows[i].Backend, s.Firewall.Flows[i].Chain = "iptables-legacy", "iptables-legacy filter FORWARD"
			}
		}, codes: []Code{CodeBridgeNetfilterDrop},
			finding: &want{code: CodeBridgeNetfilterDrop, sev: SeverityError, summary: []string{"iptables-legacy (decided it; rules also in iptables-nft)"}, fix: "iptables-legacy DOCKER-USER"}},
		{name: "bridge_netfilter_drop decided by native nftables: the accept goes into its base chain", base: healthyHostBridge, mutate: func(s *snapshot.Snapshot) {
			s.Firewall.Backends = []string{"nftables"}
			for i := range s.Firewall.Flows {
				f := &s.Firewall.Flows[i]
				f.Verdict, f.Backend, f.Chain, f.Rule = snapshot.VerdictDrop, "nftables", "nftables inet filter lan_only", "ip daddr != 10.0.0.0/8 drop"
				f.Trace = []string{"nftables inet filter forward (priority 0)", "nftables inet filter forward: jump lan_only", "nftables inet filter lan_only: ip daddr != 10.0.0.0/8 drop"}
			}
		}, codes: []Code{CodeBridgeNetfilterDrop},
			finding: &want{code: CodeBridgeNetfilterDrop, sev: SeverityError, fix: `nft insert rule inet filter forward iifname "br0" oifname "br0" accept`}},
		{name: "same DROP with bridge-nf-call-iptables=0: no alarm", base: healthyHostBridge, mutate: func(s *snapshot.Snapshot) {
			dockerDrop(s)
			s.Host.BridgeNF.CallIPTables = false
			for i := range s.Firewall.Flows {
				f := &s.Firewall.Flows[i]
				f.Verdict, f.Backend, f.Chain = snapshot.VerdictAccept, "none", ""
				f.Rule, f.Sysctl = "not filtered: net.bridge.bridge-nf-call-iptables=0", "net.bridge.bridge-nf-call-iptables=0"
			}
		}, codes: nil, healthy: ptr(true)},
		{name: "bridge network, DROP with the sysctl 0 and no guest running: no alarm", base: healthyBridged, mutate: func(s *snapshot.Snapshot) {
			s.Firewall.Docker, s.Firewall.ForwardPolicy, s.Firewall.Flows = true, "DROP", nil
			s.Host.BridgeNF = snapshot.BridgeNetfilter{Known: true, Loaded: true}
		}, codes: nil},
		{name: "host_bridge_down: br0 missing", base: healthyHostBridge, mutate: func(s *snapshot.Snapshot) { s.Host.Bridges = nil },
			codes: []Code{CodeHostBridgeDown}, healthy: ptr(false),
			finding: &want{code: CodeHostBridgeDown, sev: SeverityError, evidence: []string{"bridge=br0", "bridge_present=false"}, fix: "bridge-slave"}},
		{name: "host_bridge_down: admin down, guest off", base: healthyHostBridge, mutate: func(s *snapshot.Snapshot) {
			s.Host.Bridges[0].AdminUp, s.Host.Bridges[0].OperState = false, "down"
			s.Domains[0].State = "shut off"
			s.Firewall.Flows = nil
		}, codes: []Code{CodeHostBridgeDown},
			finding: &want{code: CodeHostBridgeDown, sev: SeverityWarning, summary: []string{"administratively down"}, fix: "ip link set dev br0 up"}},
		{name: "host_bridge_no_uplink: only the guest's tap", base: healthyHostBridge, mutate: func(s *snapshot.Snapshot) {
			s.Host.Bridges[0].Ports = []string{"vnet0"}
			s.Host.Bridges[0].PortInfo = s.Host.Bridges[0].PortInfo[1:]
			s.Firewall.Flows = nil
		}, codes: []Code{CodeHostBridgeNoUplink}, healthy: ptr(false),
			finding: &want{code: CodeHostBridgeNoUplink, sev: SeverityError, evidence: []string{"uplink_port=none"}, fix: "master br0"}},
		{name: "host_bridge_no_uplink: uplink port down", base: healthyHostBridge, mutate: func(s *snapshot.Snapshot) {
			s.Host.Bridges[0].PortInfo[0].OperState = "down"
		}, codes: []Code{CodeHostBridgeNoUplink},
			finding: &want{code: CodeHostBridgeNoUplink, sev: SeverityError, evidence: []string{"uplink_port=eth0"}, fix: "ip link set dev eth0 up"}},
		{name: "bridge_port_blocked: STP blocks the guest's tap", base: healthyHostBridge, mutate: func(s *snapshot.Snapshot) {
			s.Host.Bridges[0].PortInfo[1].STPState = "blocking"
		}, codes: []Code{CodeBridgePortBlocked}, healthy: ptr(false),
			finding: &want{code: CodeBridgePortBlocked, sev: SeverityError, evidence: []string{"port=vnet0", "stp_state=blocking"}}},
		{name: "bridge_port_blocked: still learning is a warning", base: healthyHostBridge, mutate: func(s *snapshot.Snapshot) {
			s.Host.Bridges[0].PortInfo[1].STPState = "learning"
			s.Host.Bridges[0].STP = true
		}, codes: []Code{CodeBridgePortBlocked},
			finding: &want{code: CodeBridgePortBlocked, sev: SeverityWarning, summary: []string{"forward delay"}}},
		{name: "bridged tap disabled because libvirt set the link down: only guest_nic_link_down", base: healthyHostBridge, mutate: func(s *snapshot.Snapshot) {
			s.Host.Bridges[0].PortInfo[1].STPState = "disabled"
			s.Domains[0].NICs[0].LinkState = "down"
		}, codes: []Code{CodeGuestNICLinkDown}},
	}
}
