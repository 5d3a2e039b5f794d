package diagnose

import (
	"time"

	"github.com/kvmnet/kvmnet/controller/snapshot"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// Fixtures: each function returns a fresh healthy snapshot that a test case then breaks in one way.

const (
	mac1 = "52:54:00:00:00:01"
	mac2 = "52:54:00:00:00:02"
)

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func natNetwork() snapshot.Network {
	return snapshot.Network{
		Name: "default", UUID: "u-default", Active: true, Autostart: true, Persistent: true,
		Forward: snapshot.ForwardNAT, Bridge: "virbr0", DNSEnabled: true, LeasesSupported: true,
		IPs: []snapshot.NetworkIP{{Family: 4, Address: "192.168.122.1", Prefix: 24, Subnet: "192.168.122.0/24",
			DHCPRanges: []snapshot.DHCPRange{{Start: "192.168.122.2", End: "192.168.122.254"}}}},
		Leases: []snapshot.Lease{{MAC: mac1, IP: "192.168.122.50", Prefix: 24, Family: 4, Hostname: "vm1", Expiry: t0.Add(time.Hour)}},
	}
}

func isolatedNetwork() snapshot.Network {
	return snapshot.Network{
		Name: "isolated", Active: true, Autostart: true, Persistent: true, Forward: snapshot.ForwardIsolated,
		Bridge: "virbr1", DNSEnabled: true, LeasesSupported: true,
		IPs: []snapshot.NetworkIP{{Family: 4, Address: "10.10.0.1", Prefix: 24, Subnet: "10.10.0.0/24",
			DHCPRanges: []snapshot.DHCPRange{{Start: "10.10.0.2", End: "10.10.0.254"}}}},
	}
}

func libvirtChains() []string {
	return []string{"LIBVIRT_INP", "LIBVIRT_OUT", "LIBVIRT_FWI", "LIBVIRT_FWO", "LIBVIRT_FWX", "LIBVIRT_PRT"}
}

func bridge(name, addr string, ports ...string) snapshot.Bridge {
	b := snapshot.Bridge{Name: name, OperState: "up", AdminUp: true, Ports: ports, STP: true}
	if addr != "" {
		b.Addresses = []string{addr}
	}
	return b
}

func acceptFlow(network, subnet, bridge string) []snapshot.Flow {
	return []snapshot.Flow{
		{Network: network, Kind: "egress", Description: "new tcp " + subnet + " -> uplink eth0 port 80", Verdict: snapshot.VerdictAccept,
			Rule: "-A LIBVIRT_FWO -s " + subnet + " -i " + bridge + " -j ACCEPT", Chain: "LIBVIRT_FWO"},
		{Network: network, Kind: "dhcp", Description: "udp " + bridge + " -> host port 67", Verdict: snapshot.VerdictAccept,
			Rule: "-A LIBVIRT_INP -i " + bridge + " -p udp --dport 67 -j ACCEPT", Chain: "LIBVIRT_INP"},
		{Network: network, Kind: "dns", Description: "udp " + bridge + " -> host port 53", Verdict: snapshot.VerdictAccept,
			Rule: "-A LIBVIRT_INP -i " + bridge + " -p udp --dport 53 -j ACCEPT", Chain: "LIBVIRT_INP"},
	}
}

func domain(name string, nics ...snapshot.DomainNIC) snapshot.Domain {
	return snapshot.Domain{
		Name: name, UUID: "u-" + name, State: "running", Persistent: true, NICs: nics,
		Channels: []snapshot.Channel{
			{Name: snapshot.ChannelKvmnet, Type: "unix", Path: "/var/lib/kvmnet/channels/" + name + ".sock", State: "connected"},
			{Name: snapshot.ChannelQemuGA, Type: "unix", Path: "/var/lib/libvirt/qemu/channel/target/domain-1-" + name + "/org.qemu.guest_agent.0", State: "connected"},
		},
	}
}

func netNIC(mac snapshot.MAC, network, br, vnet string) snapshot.DomainNIC {
	return snapshot.DomainNIC{MAC: mac, Type: "network", Network: network, Bridge: br, Target: vnet, Model: "virtio"}
}

func iface(name, mac string, v4 []string, def bool) *kvmnetv1.Interface {
	return &kvmnetv1.Interface{
		Name: name, Mac: mac, Kind: "device", Driver: "virtio_net", OperState: "up", Carrier: true, Mtu: 1500,
		Ipv4: v4, Ipv6: []string{"fe80::5054:ff:fe00:1/64"}, DefaultRouteV4: def,
		Stack: kvmnetv1.NetworkStack_NETWORK_STACK_NETWORK_MANAGER, Ipv4Dynamic: true,
	}
}

func dhcpProfile(ifname, mac string) *kvmnetv1.Profile {
	return &kvmnetv1.Profile{Id: "kvm-dhcp-" + ifname, Uuid: "p-" + ifname, Type: "802-3-ethernet", InterfaceName: ifname, Mac: mac,
		Ipv4Method: "auto", Ipv6Method: "ignore", Active: true, ActiveDevice: ifname, Autoconnect: true, ManagedByKvmnet: true}
}

func guestState(ifaces []*kvmnetv1.Interface, gw string, profiles ...*kvmnetv1.Profile) *kvmnetv1.GuestState {
	st := &kvmnetv1.GuestState{
		Hostname: "vm1", AgentVersion: "v0.1.0",
		Os:             &kvmnetv1.OSInfo{Id: "debian", VersionId: "12", PrettyName: "Debian GNU/Linux 12 (bookworm)"},
		Interfaces:     ifaces,
		Dns:            &kvmnetv1.DNSState{Mode: kvmnetv1.ResolverMode_RESOLVER_MODE_NETWORK_MANAGER, Servers: []string{gw}},
		NetworkManager: &kvmnetv1.NetworkManagerState{Running: true, Version: "1.42.4", Profiles: profiles},
		Ipv6:           &kvmnetv1.IPv6State{},
		PackageManager: &kvmnetv1.PackageManagerState{AptForceIpv4: kvmnetv1.ConfigFileState_CONFIG_FILE_STATE_ABSENT,
			DnfIpResolveV4: kvmnetv1.ConfigFileState_CONFIG_FILE_STATE_NOT_INSTALLED},
		QemuGuestAgent: &kvmnetv1.QemuGuestAgentState{Installed: true, Running: true, ChannelPresent: true},
		Config:         &kvmnetv1.AgentConfig{AllowApply: true, ManageProfiles: true, ManageIpv6: true, ManagePackageManager: true},
	}
	for _, it := range ifaces {
		if it.DefaultRouteV4 {
			st.Routes = append(st.Routes, &kvmnetv1.Route{Family: 4, Destination: "default", Gateway: gw, Interface: it.Name, Protocol: "dhcp"})
		}
	}
	return st
}

func result(name string, kind kvmnetv1.CheckKind, fam kvmnetv1.Family, target string, ok bool, errText string) *kvmnetv1.CheckResult {
	return &kvmnetv1.CheckResult{Check: &kvmnetv1.Check{Name: name, Kind: kind, Target: target, Family: fam}, Ok: ok, Error: errText, LatencyUs: 900}
}

const (
	ping = kvmnetv1.CheckKind_CHECK_KIND_PING
	dnsK = kvmnetv1.CheckKind_CHECK_KIND_DNS
	tcp  = kvmnetv1.CheckKind_CHECK_KIND_TCP
	v4   = kvmnetv1.Family_FAMILY_V4
	v6   = kvmnetv1.Family_FAMILY_V6
)

// okChecks are the checks collect runs, all passing, for a guest behind gateway gw.
func okChecks(gw string) []*kvmnetv1.CheckResult {
	return []*kvmnetv1.CheckResult{
		result("gateway-v4", ping, v4, "", true, ""),
		result("dns-v4", dnsK, v4, "deb.debian.org", true, ""),
		result("dnsmasq-tcp", tcp, v4, gw+":53", true, ""),
		result("egress-tcp-v4", tcp, v4, "deb.debian.org:80", true, ""),
	}
}

func baseHost(bridges ...snapshot.Bridge) snapshot.Host {
	return snapshot.Host{Read: true, IPForward: true, IPForwardKnown: true, Uplink: "eth0", Bridges: bridges,
		Dnsmasq: map[string]snapshot.DnsmasqStatus{}}
}

// healthyNAT is the stock default NAT network with one guest (agent reachable, lease, checks pass).
func healthyNAT() snapshot.Snapshot {
	net := natNetwork()
	s := snapshot.Snapshot{
		URI:      "qemu:///system",
		Networks: []snapshot.Network{net},
		Domains:  []snapshot.Domain{domain("vm1", netNIC(mac1, "default", "virbr0", "vnet0"))},
		Host:     baseHost(bridge("virbr0", "192.168.122.1/24", "vnet0")),
		Firewall: snapshot.Firewall{Backend: "iptables-nft", Read: true, LibvirtChains: libvirtChains(), ForwardPolicy: "ACCEPT",
			Masquerade: []string{"192.168.122.0/24"}, Flows: acceptFlow("default", "192.168.122.0/24", "virbr0")},
		Guests: []snapshot.Guest{{Domain: "vm1", Transport: snapshot.TransportVirtioSerial, Address: "serial:/var/lib/kvmnet/channels/vm1.sock",
			Reachable: true, Latency: 1200 * time.Microsecond,
			State:  guestState([]*kvmnetv1.Interface{iface("enp1s0", mac1, []string{"192.168.122.50/24"}, true)}, "192.168.122.1", dhcpProfile("enp1s0", mac1)),
			Checks: okChecks("192.168.122.1")}},
		TakenAt: t0,
	}
	s.Host.Dnsmasq["default"] = snapshot.DnsmasqStatus{Running: true, PID: 1234, AnswersDNS: true, Checked: true, Evidence: "pidfile=/run/libvirt/network/default.pid"}
	return s
}

// healthyIsolated: an isolated network, no ip_forward, no MASQUERADE, no egress, no default route.
func healthyIsolated() snapshot.Snapshot {
	net := isolatedNetwork()
	net.Leases = []snapshot.Lease{{MAC: mac1, IP: "10.10.0.20", Prefix: 24, Family: 4, Expiry: t0.Add(time.Hour)}}
	st := guestState([]*kvmnetv1.Interface{iface("enp1s0", mac1, []string{"10.10.0.20/24"}, false)}, "10.10.0.1", dhcpProfile("enp1s0", mac1))
	s := snapshot.Snapshot{
		URI:      "qemu:///system",
		Networks: []snapshot.Network{net},
		Domains:  []snapshot.Domain{domain("vm1", netNIC(mac1, "isolated", "virbr1", "vnet0"))},
		Host:     baseHost(bridge("virbr1", "10.10.0.1/24", "vnet0")),
		Firewall: snapshot.Firewall{Backend: "iptables-nft", Read: true, LibvirtChains: libvirtChains(), ForwardPolicy: "ACCEPT",
			Flows: []snapshot.Flow{{Network: "isolated", Kind: "egress", Verdict: snapshot.VerdictReject, Chain: "LIBVIRT_FWO",
				Rule: "-A LIBVIRT_FWO -i virbr1 -j REJECT --reject-with icmp-port-unreachable", Description: "new tcp 10.10.0.0/24 -> uplink eth0 port 80"}}},
		Guests: []snapshot.Guest{{Domain: "vm1", Transport: snapshot.TransportVirtioSerial, Reachable: true, State: st,
			Checks: []*kvmnetv1.CheckResult{result("dns-v4", dnsK, v4, "deb.debian.org", false, "no such host")}}},
	}
	s.Host.IPForward = false
	s.Host.Dnsmasq["isolated"] = snapshot.DnsmasqStatus{Running: true, AnswersDNS: true, Checked: true}
	return s
}

// healthyBridged: a libvirt network in bridge mode over the host bridge br0; the LAN's DHCP server
// hands out addresses, so there are no libvirt leases, only neighbour entries.
func healthyBridged() snapshot.Snapshot {
	br := bridge("br0", "192.168.1.10/24", "eth0", "vnet0")
	br.Neighbors = []snapshot.Neighbor{{IP: "192.168.1.50", MAC: mac1, State: "reachable"}}
	st := guestState([]*kvmnetv1.Interface{iface("ens3", mac1, []string{"192.168.1.50/24"}, true)}, "192.168.1.1", dhcpProfile("ens3", mac1))
	s := snapshot.Snapshot{
		URI: "qemu:///system",
		Networks: []snapshot.Network{{Name: "host-bridge", Active: true, Autostart: true, Persistent: true,
			Forward: snapshot.ForwardBridge, Bridge: "br0", LeasesSupported: true}},
		Domains: []snapshot.Domain{domain("vm1", netNIC(mac1, "host-bridge", "br0", "vnet0"))},
		Host:    baseHost(br),
		Firewall: snapshot.Firewall{Backend: "iptables-nft", Read: true, ForwardPolicy: "ACCEPT",
			Flows: []snapshot.Flow{{Network: "host-bridge", Kind: "egress", Verdict: snapshot.VerdictAccept, Chain: "FORWARD", Rule: "policy ACCEPT of FORWARD"}}},
		Guests: []snapshot.Guest{{Domain: "vm1", Transport: snapshot.TransportVirtioSerial, Reachable: true, State: st, Checks: okChecks("192.168.1.1")}},
	}
	s.Host.IPForward = false // bridged traffic is switched, not routed
	s.Host.Uplink = "br0"
	return s
}

// healthyRouted: a routed network; no MASQUERADE is needed.
func healthyRouted() snapshot.Snapshot {
	s := healthyNAT()
	n := &s.Networks[0]
	n.Name, n.Forward, n.Bridge = "routed", snapshot.ForwardRoute, "virbr3"
	n.IPs[0] = snapshot.NetworkIP{Family: 4, Address: "192.168.100.1", Prefix: 24, Subnet: "192.168.100.0/24",
		DHCPRanges: []snapshot.DHCPRange{{Start: "192.168.100.2", End: "192.168.100.254"}}}
	n.Leases[0].IP = "192.168.100.50"
	s.Domains[0].NICs[0] = netNIC(mac1, "routed", "virbr3", "vnet0")
	s.Host.Bridges = []snapshot.Bridge{bridge("virbr3", "192.168.100.1/24", "vnet0")}
	s.Host.Dnsmasq = map[string]snapshot.DnsmasqStatus{"routed": {Running: true, AnswersDNS: true, Checked: true}}
	s.Firewall.Masquerade = nil
	s.Firewall.Flows = acceptFlow("routed", "192.168.100.0/24", "virbr3")
	g := &s.Guests[0]
	g.State = guestState([]*kvmnetv1.Interface{iface("enp1s0", mac1, []string{"192.168.100.50/24"}, true)}, "192.168.100.1", dhcpProfile("enp1s0", mac1))
	g.Checks = okChecks("192.168.100.1")
	return s
}

// multiNIC: one guest with a NAT NIC and an isolated NIC; the agent lists the interfaces in the
// opposite order from the domain XML, so rows must be matched by MAC.
func multiNIC() snapshot.Snapshot {
	s := healthyNAT()
	iso := isolatedNetwork()
	iso.Leases = []snapshot.Lease{{MAC: mac2, IP: "10.10.0.30", Prefix: 24, Family: 4, Expiry: t0.Add(time.Hour)}}
	s.Networks = append(s.Networks, iso)
	s.Domains[0].NICs = append(s.Domains[0].NICs, netNIC(mac2, "isolated", "virbr1", "vnet1"))
	s.Host.Bridges = append(s.Host.Bridges, bridge("virbr1", "10.10.0.1/24", "vnet1"))
	s.Host.Dnsmasq["isolated"] = snapshot.DnsmasqStatus{Running: true, AnswersDNS: true, Checked: true}
	s.Firewall.Flows = append(s.Firewall.Flows, snapshot.Flow{Network: "isolated", Kind: "egress", Verdict: snapshot.VerdictReject,
		Chain: "LIBVIRT_FWO", Rule: "-A LIBVIRT_FWO -i virbr1 -j REJECT"})
	st := s.Guests[0].State
	st.Interfaces = []*kvmnetv1.Interface{iface("enp2s0", mac2, []string{"10.10.0.30/24"}, false), st.Interfaces[0]}
	st.NetworkManager.Profiles = append(st.NetworkManager.Profiles, dhcpProfile("enp2s0", mac2))
	return s
}
