package snapshot

import "time"

// ForwardMode is a libvirt network's <forward mode=...>; "isolated" when there is no <forward>.
type ForwardMode string

// Forward modes.
const (
	ForwardNAT         ForwardMode = "nat"
	ForwardRoute       ForwardMode = "route"
	ForwardOpen        ForwardMode = "open"
	ForwardBridge      ForwardMode = "bridge"
	ForwardIsolated    ForwardMode = "isolated"
	ForwardPassthrough ForwardMode = "passthrough"
	ForwardOther       ForwardMode = "other"
)

// Network is one libvirt network.
type Network struct {
	// Name, e.g. "default".
	Name string `json:"name"`
	// UUID identifies the object across renames and redefinitions.
	UUID string `json:"uuid"`
	// Active is true when started.
	Active bool `json:"active"`
	// Autostart is true when it starts with libvirtd.
	Autostart bool `json:"autostart"`
	// Persistent is true when defined (not transient).
	Persistent bool `json:"persistent"`
	// Forward is the forward mode.
	Forward ForwardMode `json:"forward"`
	// ForwardDev is <forward dev=...>, when set.
	ForwardDev string `json:"forward_dev,omitempty"`
	// Bridge is the bridge name (virbr0); for forward mode bridge, the existing host bridge.
	Bridge string `json:"bridge"`
	// IPs are the <ip> elements.
	IPs []NetworkIP `json:"ips,omitempty"`
	// DNSEnabled is false when <dns enable='no'>.
	DNSEnabled bool `json:"dns_enabled"`
	// DNSForwarders are <dns><forwarder addr=...>.
	DNSForwarders []string `json:"dns_forwarders,omitempty"`
	// Domain is <domain name=...>.
	Domain string `json:"domain,omitempty"`
	// Leases are the current DHCP leases (empty when unsupported or none).
	Leases []Lease `json:"leases,omitempty"`
	// LeasesSupported is false when the driver cannot report leases (test:///, remote without it).
	LeasesSupported bool `json:"leases_supported"`
	// XML is the network's XML description (for fixes and evidence).
	XML string `json:"-"`
}

// Subnet returns the first IPv4 network in CIDR form, e.g. "192.168.122.0/24", or "".
func (n Network) Subnet() string {
	for _, ip := range n.IPs {
		if ip.Family == 4 && ip.Subnet != "" {
			return ip.Subnet
		}
	}
	return ""
}

// HasDHCP reports whether any IPv4 <ip> has a DHCP range or static hosts.
func (n Network) HasDHCP() bool {
	for _, ip := range n.IPs {
		if ip.Family == 4 && (len(ip.DHCPRanges) > 0 || len(ip.DHCPHosts) > 0) {
			return true
		}
	}
	return false
}

// NetworkIP is one <ip> element of a network.
type NetworkIP struct {
	// Family 4 or 6.
	Family int `json:"family"`
	// Address of the host on the network (the bridge IP), e.g. "192.168.122.1".
	Address string `json:"address"`
	// Prefix length.
	Prefix int `json:"prefix"`
	// Subnet in CIDR form, e.g. "192.168.122.0/24".
	Subnet string `json:"subnet"`
	// DHCPRanges are <dhcp><range start end>.
	DHCPRanges []DHCPRange `json:"dhcp_ranges,omitempty"`
	// DHCPHosts are <dhcp><host mac ip name>.
	DHCPHosts []DHCPHost `json:"dhcp_hosts,omitempty"`
}

// DHCPRange is one DHCP range.
type DHCPRange struct {
	// Start address.
	Start string `json:"start"`
	// End address.
	End string `json:"end"`
}

// DHCPHost is one static DHCP host entry.
type DHCPHost struct {
	// MAC address.
	MAC MAC `json:"mac"`
	// IP address.
	IP string `json:"ip"`
	// Host name.
	Name string `json:"name,omitempty"`
}

// Lease is one DHCP lease handed out by libvirt's dnsmasq.
type Lease struct {
	// MAC address.
	MAC MAC `json:"mac"`
	// IP address (no prefix).
	IP string `json:"ip"`
	// Prefix length.
	Prefix int `json:"prefix"`
	// Family 4 or 6.
	Family int `json:"family"`
	// Hostname the client sent.
	Hostname string `json:"hostname,omitempty"`
	// Expiry time.
	Expiry time.Time `json:"expiry"`
}

// DomainNIC is one <interface> of a domain.
type DomainNIC struct {
	// MAC address.
	MAC MAC `json:"mac"`
	// Type: "network", "bridge", "user", "direct", ...
	Type string `json:"type"`
	// Network is the libvirt network name for type network.
	Network string `json:"network,omitempty"`
	// Bridge is the host bridge (for type bridge, or resolved from the network when running).
	Bridge string `json:"bridge,omitempty"`
	// Target is the host-side tap device (vnetN), when running.
	Target string `json:"target,omitempty"`
	// Model, e.g. "virtio".
	Model string `json:"model,omitempty"`
	// LinkState is "up" or "down" (<link state=...>; empty means up).
	LinkState string `json:"link_state,omitempty"`
	// SourceDev is <source dev=...>: the host NIC of a direct (macvtap) interface.
	SourceDev string `json:"source_dev,omitempty"`
	// Backend is <backend type=...> ("passt" for passt user-mode networking; "" is QEMU's slirp or
	// a tap).
	Backend string `json:"backend,omitempty"`
}

// Channel is one <channel> of a domain.
type Channel struct {
	// Target name, e.g. "org.kvmnet.agent.0".
	Name string `json:"name"`
	// Type, e.g. "unix".
	Type string `json:"type"`
	// Path of the unix socket on the host (for type unix).
	Path string `json:"path,omitempty"`
	// State is "connected" or "disconnected" as libvirt reports it (running domains only).
	State string `json:"state,omitempty"`
}

// Well-known channel names.
const (
	// ChannelKvmnet is the kvmnet agent's virtio-serial port.
	ChannelKvmnet = "org.kvmnet.agent.0"
	// ChannelQemuGA is qemu-guest-agent's virtio-serial port.
	ChannelQemuGA = "org.qemu.guest_agent.0"
)

// Domain is one libvirt domain.
type Domain struct {
	// Name is the domain name virsh uses.
	Name string `json:"name"`
	// UUID identifies the object across renames and redefinitions.
	UUID string `json:"uuid"`
	// State: "running", "shut off", "paused", "crashed", ...
	State string `json:"state"`
	// Persistent is true when defined.
	Persistent bool `json:"persistent"`
	// NICs are the domain's interfaces.
	NICs []DomainNIC `json:"nics"`
	// Channels are the domain's channels.
	Channels []Channel `json:"channels,omitempty"`
	// ID is the running domain's id (the N of libvirt's domain-N-NAME channel directory); 0 when off.
	ID int `json:"id,omitempty"`
	// VsockCID is the <vsock><cid address=N/>; 0 when the domain has no vsock device.
	VsockCID uint32 `json:"vsock_cid,omitempty"`
	// ChannelAccess describes who can connect to the kvmnet channel socket (nil when unknown).
	ChannelAccess *SocketAccess `json:"channel_access,omitempty"`
	// XML is the live (or inactive) domain XML, for fixes.
	XML string `json:"-"`
}

// Running reports whether the domain is running.
func (d Domain) Running() bool { return d.State == "running" }

// Channel returns the channel with the given target name.
func (d Domain) Channel(name string) (Channel, bool) {
	for _, c := range d.Channels {
		if c.Name == name {
			return c, true
		}
	}
	return Channel{}, false
}

// SocketAccess says which non-root users can connect() to a unix socket.
type SocketAccess struct {
	// Path of the socket.
	Path string `json:"path"`
	// Owner and group names of the socket.
	Owner string `json:"owner"`
	// Group of the socket.
	Group string `json:"group"`
	// Mode, e.g. "srwxrwxr-x".
	Mode string `json:"mode"`
	// Everyone is true when any user can connect.
	Everyone bool `json:"everyone"`
	// Groups that grant access, with their members, e.g. {"kvm": ["alice"]}.
	Groups map[string][]string `json:"groups,omitempty"`
	// Users (other than root) who can connect through ownership.
	Users []string `json:"users,omitempty"`
	// Evidence, key=value words.
	Evidence string `json:"evidence,omitempty"`
}

// Exposed reports whether anyone but root can connect.
func (a SocketAccess) Exposed() bool {
	return a.Everyone || len(a.Groups) > 0 || len(a.Users) > 0
}
