package snapshot

// BridgeNetfilter is br_netfilter's state in the host's network namespace: whether bridged frames
// are handed to the IP hooks (iptables, ip/inet nftables), where a FORWARD DROP meant for routed
// traffic also cuts off bridged guests.
type BridgeNetfilter struct {
	// Known is true when /proc/sys/net was read (false: unknown, nothing is assumed).
	Known bool `json:"known"`
	// Loaded is true when net.bridge.* exists (br_netfilter loaded or built in).
	Loaded bool `json:"loaded"`
	// CallIPTables is net.bridge.bridge-nf-call-iptables == 1.
	CallIPTables bool `json:"call_iptables"`
	// CallIP6Tables is net.bridge.bridge-nf-call-ip6tables == 1.
	CallIP6Tables bool `json:"call_ip6tables"`
	// CallARPTables is net.bridge.bridge-nf-call-arptables == 1.
	CallARPTables bool `json:"call_arptables"`
}

// Sysctl keys of br_netfilter.
const (
	// BridgeNFCallIPTables makes bridged IPv4 frames traverse the IPv4 hooks.
	BridgeNFCallIPTables = "net.bridge.bridge-nf-call-iptables"
	// BridgeNFCallIP6Tables does the same for IPv6.
	BridgeNFCallIP6Tables = "net.bridge.bridge-nf-call-ip6tables"
	// BridgeNFCallARPTables hands bridged ARP to arptables.
	BridgeNFCallARPTables = "net.bridge.bridge-nf-call-arptables"
)

// IPv4Filtered reports whether bridged IPv4 frames reach the IP hooks.
func (b BridgeNetfilter) IPv4Filtered() bool { return b.Known && b.Loaded && b.CallIPTables }

// BridgePort is one port of a Linux bridge.
type BridgePort struct {
	// Name of the port device (vnet0, eth0, veth...).
	Name string `json:"name"`
	// Kind is the link type netlink reports: "tuntap" for guest taps, "veth", "device" (a physical
	// NIC), "bond", "vlan", ...
	Kind string `json:"kind"`
	// OperState of the port device ("up", "down", "lowerlayerdown").
	OperState string `json:"oper_state"`
	// AdminUp is the port's IFF_UP flag.
	AdminUp bool `json:"admin_up"`
	// STPState is the bridge port state (IFLA_BRPORT_STATE): "disabled", "listening", "learning",
	// "forwarding", "blocking"; "" when unknown. Only "forwarding" passes frames.
	STPState string `json:"stp_state,omitempty"`
}

// Port returns the port with the given name.
func (b Bridge) Port(name string) (BridgePort, bool) {
	for _, p := range b.PortInfo {
		if p.Name == name {
			return p, true
		}
	}
	return BridgePort{}, false
}

// NICBackendPasst is <backend type='passt'/> of a user-mode interface (libvirt >= 9.0 for
// qemu:///session, 10.8 and later also system): passt runs in user space, the guest has no tap,
// bridge, lease or host firewall path.
const NICBackendPasst = "passt"
