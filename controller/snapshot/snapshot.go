package snapshot

import (
	"time"

	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// Snapshot is everything the controller knows about one host at one moment.
type Snapshot struct {
	// URI is the libvirt connection URI the snapshot was read through.
	URI string `json:"uri"`
	// Session is true for qemu:///session (user-mode networking, no bridges or leases).
	Session bool `json:"session"`
	// Networks are libvirt's networks, active or not.
	Networks Networks `json:"networks"`
	// Domains are libvirt's domains, running or not.
	Domains []Domain `json:"domains"`
	// Host holds the host's own network facts.
	Host Host `json:"host"`
	// Firewall holds the parsed rule sets and per-network flow verdicts.
	Firewall Firewall `json:"firewall"`
	// Guests holds each domain's agent view, keyed by domain name order of Domains.
	Guests []Guest `json:"guests"`
	// TakenAt is when collection started.
	TakenAt time.Time `json:"taken_at"`
	// Errors are problems met while collecting; the rest of the snapshot is still valid.
	Errors []string `json:"errors,omitempty"`
}

// Host holds facts about the host's own network stack.
type Host struct {
	// Read is true when the host's links were read (a local connection URI and the host-network
	// source answered). When false, an empty Bridges list means "unknown", not "no bridges".
	Read bool `json:"read"`
	// IPForward is net.ipv4.ip_forward == 1.
	IPForward bool `json:"ip_forward"`
	// IPForwardKnown is false when the sysctl could not be read.
	IPForwardKnown bool `json:"ip_forward_known"`
	// Uplink is the interface of the IPv4 default route ("" when none).
	Uplink string `json:"uplink"`
	// IPv6DefaultRoute is true when the host itself has an IPv6 default route, i.e. guests behind
	// NAT could use IPv6 if the network provided it.
	IPv6DefaultRoute bool `json:"ipv6_default_route"`
	// Bridges are the host's Linux bridges.
	Bridges []Bridge `json:"bridges"`
	// Dnsmasq is the state of libvirt's dnsmasq per network name.
	Dnsmasq map[string]DnsmasqStatus `json:"dnsmasq,omitempty"`
	// BridgeNF is br_netfilter's state (bridge-nf-call-* sysctls).
	BridgeNF BridgeNetfilter `json:"bridge_nf"`
}

// Bridge is one Linux bridge on the host.
type Bridge struct {
	// Name, e.g. "virbr0".
	Name string `json:"name"`
	// OperState as netlink reports it ("up", "down", "unknown").
	OperState string `json:"oper_state"`
	// AdminUp is the IFF_UP flag.
	AdminUp bool `json:"admin_up"`
	// Addresses in CIDR form.
	Addresses []string `json:"addresses"`
	// Ports are the attached interfaces (vnetN, uplinks).
	Ports []string `json:"ports"`
	// STP is true when spanning tree is on.
	STP bool `json:"stp"`
	// PortInfo details each port (kind, state, STP port state), in Ports' order.
	PortInfo []BridgePort `json:"port_info,omitempty"`
	// Neighbors are ARP/NDP entries seen on the bridge.
	Neighbors []Neighbor `json:"neighbors,omitempty"`
}

// Neighbor is an ARP or NDP entry.
type Neighbor struct {
	// IP address.
	IP string `json:"ip"`
	// MAC address.
	MAC MAC `json:"mac"`
	// State, e.g. "reachable", "stale", "failed".
	State string `json:"state"`
}

// DnsmasqStatus tells whether libvirt's dnsmasq for a network runs and answers.
type DnsmasqStatus struct {
	// Running is true when the pid file names a live dnsmasq process.
	Running bool `json:"running"`
	// PID of the process, 0 when unknown.
	PID int `json:"pid,omitempty"`
	// AnswersDNS is true when a DNS query to the bridge IP got an answer.
	AnswersDNS bool `json:"answers_dns"`
	// Checked is false when the status could not be determined (e.g. remote URI).
	Checked bool `json:"checked"`
	// Evidence, key=value words.
	Evidence string `json:"evidence,omitempty"`
}

// AgentTransport names how the controller reaches a guest agent.
type AgentTransport string

// Transports.
const (
	TransportNone         AgentTransport = "none"
	TransportVsock        AgentTransport = "vsock"
	TransportVirtioSerial AgentTransport = "virtio-serial"
	TransportUnix         AgentTransport = "unix"
)

// Guest is what the controller learned from one guest's agent.
type Guest struct {
	// Domain is the libvirt domain name.
	Domain string `json:"domain"`
	// Transport used (none when the domain has no kvmnet channel or vsock).
	Transport AgentTransport `json:"transport"`
	// Address dialled, as text (Addr.String()), e.g. "serial:/path/to/channel.sock" or "vsock:5:7531".
	Address string `json:"address,omitempty"`
	// Addr is the address dialled, for dialling it again (fix) without parsing Address.
	Addr AgentAddr `json:"-"`
	// Reachable is true when GetState answered.
	Reachable bool `json:"reachable"`
	// Error says why the agent could not be reached.
	Error string `json:"error,omitempty"`
	// State is the agent's view; nil when unreachable.
	State *kvmnetv1.GuestState `json:"state,omitempty"`
	// Checks are the results of RunChecks, when they were run.
	Checks []*kvmnetv1.CheckResult `json:"checks,omitempty"`
	// Latency is how long GetState took.
	Latency time.Duration `json:"latency_ns,omitempty"`
	// TimedOut is true when the guest's deadline ended before it answered (GetState, or the checks
	// after it): a hung agent or QEMU, as opposed to one that refused the connection.
	TimedOut bool `json:"timed_out,omitempty"`
	// Connected is true when the agent took the connection (the virtio-serial handshake was
	// answered, or the socket accepted and HTTP/2 came up): an agent that then does not answer is
	// running but hung or overloaded, not missing.
	Connected bool `json:"connected,omitempty"`
	// QGA is qemu-guest-agent's view, asked when the kvmnet agent did not answer (nil: not asked).
	QGA *QGAView `json:"qga,omitempty"`
}

// FindDomain returns the domain with the given name.
func (s Snapshot) FindDomain(name string) (Domain, bool) {
	for _, d := range s.Domains {
		if d.Name == name {
			return d, true
		}
	}
	return Domain{}, false
}

// FindGuest returns the agent view of the named domain.
func (s Snapshot) FindGuest(name string) (Guest, bool) {
	for _, g := range s.Guests {
		if g.Domain == name {
			return g, true
		}
	}
	return Guest{}, false
}
