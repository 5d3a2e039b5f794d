package diagnose

import "github.com/kvmnet/kvmnet/controller/snapshot"

// Report is the diagnosis of one snapshot. Marshalled to JSON it is the contract of
// `kvmnetctl guests status -o json` and `kvmnetctl host check -o json` (README, "JSON contract"):
// {"host": {"findings": [F]}, "networks": [...], "guests": [...]}. Fields are only ever added.
type Report struct {
	// Host holds host- and network-level findings and the host facts they rest on.
	Host HostReport `json:"host"`
	// Networks are libvirt's networks, in snapshot order.
	Networks []NetworkReport `json:"networks"`
	// Guests are libvirt's domains, in snapshot order.
	Guests []GuestReport `json:"guests"`
	// URI is the libvirt connection the snapshot was read through.
	URI string `json:"uri,omitempty"`
	// Errors are problems met while collecting; the rest of the report is still valid.
	Errors []string `json:"errors,omitempty"`
}

// HostReport is the "host" object of the JSON contract.
type HostReport struct {
	// Findings whose subject is the host or a network.
	Findings []Finding `json:"findings"`
	// IPForward is net.ipv4.ip_forward; nil when unknown.
	IPForward *bool `json:"ip_forward,omitempty"`
	// BridgeNF says whether bridged frames meet the IP hooks, e.g.
	// "net.bridge.bridge-nf-call-iptables=1" or "br_netfilter not loaded"; "" when the host was not read.
	BridgeNF string `json:"bridge_nf,omitempty"`
	// Uplink is the interface of the IPv4 default route.
	Uplink string `json:"uplink,omitempty"`
	// IPv6DefaultRoute is true when the host has an IPv6 default route.
	IPv6DefaultRoute bool `json:"ipv6_default_route"`
	// Firewall summarises the rule sets.
	Firewall FirewallReport `json:"firewall"`
	// Bridges are the host's Linux bridges (empty when the host's links were not read).
	Bridges []BridgeReport `json:"bridges"`
}

// BridgeReport is one host bridge.
type BridgeReport struct {
	// Name of the bridge.
	Name string `json:"name"`
	// State: the oper state, "down" when administratively down, "no-carrier" when up without ports.
	State string `json:"state"`
	// Addresses in CIDR form.
	Addresses []string `json:"addresses"`
	// Ports attached.
	Ports []string `json:"ports"`
	// STP is true when spanning tree is on.
	STP bool `json:"stp"`
}

// FirewallReport summarises the host firewall as far as guests are concerned.
type FirewallReport struct {
	// Read is false when the rules could not be read.
	Read bool `json:"read"`
	// Backend holding the rules ("iptables-nft", "iptables-legacy", "nftables", "none").
	Backend string `json:"backend,omitempty"`
	// LibvirtRules: "iptables" (LIBVIRT_* chains), "nftables" (libvirt_network table) or "missing".
	LibvirtRules string `json:"libvirt_rules,omitempty"`
	// ForwardPolicy of the filter FORWARD chain.
	ForwardPolicy string `json:"forward_policy,omitempty"`
	// Docker is true when Docker's chains exist.
	Docker bool `json:"docker"`
	// UFW: "inactive" or "active (routed: POLICY)".
	UFW string `json:"ufw,omitempty"`
	// Firewalld: "not running", "running (libvirt zone)" or "running (no libvirt zone)".
	Firewalld string `json:"firewalld,omitempty"`
}

// NetworkReport is one entry of the "networks" array of the JSON contract.
type NetworkReport struct {
	// Name of the libvirt network.
	Name string `json:"name"`
	// Active is true when started.
	Active bool `json:"active"`
	// Autostart is true when it starts with libvirtd.
	Autostart bool `json:"autostart"`
	// Forward mode: nat, route, open, bridge, isolated, ...
	Forward string `json:"forward"`
	// Bridge name.
	Bridge string `json:"bridge"`
	// Subnet is the first IPv4 subnet in CIDR form ("" for bridged networks).
	Subnet string `json:"subnet"`
	// Persistent is true when defined.
	Persistent bool `json:"persistent"`
	// BridgeState: "up", "down", "no-carrier" (up, no ports yet), "missing" or "unknown".
	BridgeState string `json:"bridge_state"`
	// DHCP is true when libvirt hands out addresses on it.
	DHCP bool `json:"dhcp"`
	// Leases is the number of current IPv4 leases (-1 when the driver cannot tell).
	Leases int `json:"leases"`
	// Dnsmasq: "answering", "running", "down", "n/a" or "unknown".
	Dnsmasq string `json:"dnsmasq"`
	// Masquerade: "yes", "no", "n/a" (not a NAT network) or "unknown".
	Masquerade string `json:"masquerade"`
	// Egress is the evaluated verdict for a new guest TCP flow to the uplink ("accept", "drop",
	// "reject", "unknown", or "n/a" on isolated networks).
	Egress string `json:"egress"`
	// EgressRule is the rule that decided Egress.
	EgressRule string `json:"egress_rule,omitempty"`
	// EgressBackend is the firewall world whose rule decided Egress (iptables-nft, iptables-legacy,
	// nftables; "none" when no rule did).
	EgressBackend string `json:"egress_backend,omitempty"`
	// ReturnRoute says what a network without NAT needs upstream (route and open modes): the way
	// back to its subnet is on another machine, so it is "unknown" here, with what it must be.
	ReturnRoute string `json:"return_route,omitempty"`
	// Healthy is false when an error-level finding concerns this network.
	Healthy bool `json:"healthy"`
}

// GuestReport is one entry of the "guests" array of the JSON contract.
type GuestReport struct {
	// Name of the domain.
	Name string `json:"name"`
	// State of the domain ("running", "shut off", ...).
	State string `json:"state"`
	// Healthy is false when the guest has an error-level finding or an error-level host/network
	// finding concerns one of its networks (see HostCauses).
	Healthy bool `json:"healthy"`
	// Health is "unhealthy" (not Healthy), "unknown" (no error found, but nothing was seen from
	// inside the running guest: neither agent answered) or "healthy".
	Health Health `json:"health"`
	// Agent is how the kvmnet agent is reached.
	Agent AgentReport `json:"agent"`
	// NICs are the correlation rows, one per domain NIC.
	NICs []NICReport `json:"nics"`
	// Findings about this guest.
	Findings []Finding `json:"findings"`
	// HostCauses are the codes of error-level host/network findings that affect this guest; they
	// are fixed with `kvmnetctl host fix`, not in the guest.
	HostCauses []Code `json:"host_causes,omitempty"`
	// Checks are the connectivity checks the agent ran, if any.
	Checks []CheckReport `json:"checks,omitempty"`
	// Hostname the agent reported.
	Hostname string `json:"hostname,omitempty"`
	// OS is the guest's PRETTY_NAME.
	OS string `json:"os,omitempty"`
}

// Health is a guest's verdict as people read it: what Healthy cannot say is "we do not know".
type Health string

// Health values.
const (
	HealthHealthy   Health = "healthy"
	HealthUnhealthy Health = "unhealthy"
	HealthUnknown   Health = "unknown"
)

// AgentReport is the "agent" object of a guest.
type AgentReport struct {
	// Transport: "vsock", "virtio-serial", "unix" or "none".
	Transport string `json:"transport"`
	// Reachable is true when GetState answered.
	Reachable bool `json:"reachable"`
	// Address dialled.
	Address string `json:"address,omitempty"`
	// Version of the agent.
	Version string `json:"version,omitempty"`
	// Error says why the agent could not be reached.
	Error string `json:"error,omitempty"`
	// AllowApply is the agent's allow_apply switch; nil when unknown.
	AllowApply *bool `json:"allow_apply,omitempty"`
	// LatencyMS is how long GetState took.
	LatencyMS float64 `json:"latency_ms,omitempty"`
	// QGA is qemu-guest-agent's view when the kvmnet agent did not answer (nil: not asked).
	QGA *QGAReport `json:"qga,omitempty"`
}

// NICReport is one correlation row: a domain NIC with the host's and the guest's view of it.
type NICReport struct {
	// MAC address.
	MAC snapshot.MAC `json:"mac"`
	// Network is the libvirt network ("" for a plain host bridge or user-mode NIC).
	Network string `json:"network"`
	// Bridge is the host bridge.
	Bridge string `json:"bridge"`
	// GuestIfname is the guest's interface with this MAC ("" when unknown).
	GuestIfname string `json:"guest_ifname"`
	// GuestIPv4 are the guest interface's IPv4 addresses in CIDR form.
	GuestIPv4 []string `json:"guest_ipv4"`
	// LeaseIPv4 is the libvirt lease (or, on bridged networks, the neighbour entry) for the MAC.
	LeaseIPv4 string `json:"lease_ipv4"`
	// LeaseSource: "libvirt", "neighbour" or "" (none).
	LeaseSource string `json:"lease_source,omitempty"`
	// Type of the domain interface: network, bridge, user, direct.
	Type string `json:"type"`
	// Forward mode of the network.
	Forward string `json:"forward,omitempty"`
	// Vnet is the host-side tap (vnetN).
	Vnet string `json:"vnet,omitempty"`
	// Backend is the user-mode NIC's backend ("passt"; "" for QEMU's slirp or a tap).
	Backend string `json:"backend,omitempty"`
	// LinkState is the host-side link state ("up" or "down").
	LinkState string `json:"link_state"`
	// GuestOperState is the guest interface's oper state.
	GuestOperState string `json:"guest_oper_state,omitempty"`
	// Stack is the software that configures the guest interface, as the agent detected it
	// ("network_manager", "networkd", "ifupdown", "none"; "" when unknown).
	Stack string `json:"stack,omitempty"`
	// NeighborIPv4 are IPv4 neighbour entries for the MAC on the bridge.
	NeighborIPv4 []string `json:"neighbor_ipv4,omitempty"`
	// IPv6: "disabled", "link-local", "global", "global+route", "none" or "unknown".
	IPv6 string `json:"ipv6"`
	// AptIPv4: apt's (or dnf's) IPv4-only state: "forced (FILE)", "not forced", "n/a", "unknown".
	AptIPv4 string `json:"apt_ipv4"`
	// Checks summarises the guest's checks when this NIC carries the default route ("-" otherwise).
	Checks string `json:"checks"`
}

// CheckReport is one connectivity check result.
type CheckReport struct {
	// Name given by the caller.
	Name string `json:"name"`
	// Kind: ping, dns, tcp, http.
	Kind string `json:"kind"`
	// Family: any, v4, v6.
	Family string `json:"family"`
	// Target checked.
	Target string `json:"target"`
	// OK is true on success.
	OK bool `json:"ok"`
	// Error says why it failed.
	Error string `json:"error,omitempty"`
	// Address actually used.
	Address string `json:"address,omitempty"`
	// LatencyMS taken.
	LatencyMS float64 `json:"latency_ms"`
}

// AgentColumn is the guest's agent as `guests status` shows it: "TRANSPORT/ok",
// "TRANSPORT/unreachable", AgentQGA when only qemu-guest-agent answered, or "none".
func (g GuestReport) AgentColumn() string {
	agent := "none"
	if g.Agent.Transport != "none" && g.Agent.Transport != "" {
		agent = g.Agent.Transport + "/ok"
		if !g.Agent.Reachable {
			agent = g.Agent.Transport + "/unreachable"
		}
	}
	if !g.Agent.Reachable && g.Agent.QGA != nil && g.Agent.QGA.Answered {
		agent = AgentQGA
	}
	return agent
}

// All returns every finding of the report: host findings first, then each guest's.
func (r Report) All() []Finding {
	out := append([]Finding(nil), r.Host.Findings...)
	for _, g := range r.Guests {
		out = append(out, g.Findings...)
	}
	return out
}

// HasErrors reports whether the report holds any error-level finding (kvmnetctl host check exits 1).
func (r Report) HasErrors() bool { return HasErrors(r.All()) }

// GuestsHealthy reports whether every guest in the report is healthy (kvmnetctl guests status exits
// 1 otherwise).
func (r Report) GuestsHealthy() bool {
	for _, g := range r.Guests {
		if !g.Healthy {
			return false
		}
	}
	return true
}

// Guest returns the report of the named guest.
func (r Report) Guest(name string) (GuestReport, bool) {
	for _, g := range r.Guests {
		if g.Name == name {
			return g, true
		}
	}
	return GuestReport{}, false
}

// OnlyGuests returns a copy of r whose Guests are restricted to the named domains, in the given
// order, and the names that matched no domain. Host findings and networks are kept.
func (r Report) OnlyGuests(names ...string) (Report, []string) {
	if len(names) == 0 {
		return r, nil
	}
	out := r
	out.Guests = nil
	var missing []string
	for _, n := range names {
		g, ok := r.Guest(n)
		if !ok {
			missing = append(missing, n)
			continue
		}
		out.Guests = append(out.Guests, g)
	}
	if out.Guests == nil {
		out.Guests = []GuestReport{}
	}
	return out, missing
}

// HostFindings returns the host findings plus the guest findings whose catalogue scope is the host
// (channel_socket_exposed): what `kvmnetctl host check` shows and grades.
func (r Report) HostFindings() []Finding {
	out := append([]Finding(nil), r.Host.Findings...)
	for _, g := range r.Guests {
		for _, f := range g.Findings {
			if info, ok := Lookup(f.Code); ok && info.Scope == ScopeHost {
				out = append(out, f)
			}
		}
	}
	return out
}

// Diagnose correlates a snapshot and names what is wrong. It is pure and deterministic: the same
// snapshot gives the same report.
func Diagnose(s snapshot.Snapshot) Report {
	d := newDiag(s)
	d.hostAndNetworks()
	r := Report{
		URI:      s.URI,
		Errors:   s.Errors,
		Host:     d.hostReport(),
		Networks: d.networkReports(),
		Guests:   make([]GuestReport, 0, len(s.Domains)),
	}
	for _, dom := range s.Domains {
		r.Guests = append(r.Guests, d.guest(dom))
	}
	return r
}
