package snapshot

// Verdict is the fate of a packet as the firewall evaluation determined it.
type Verdict string

// Verdicts.
const (
	VerdictAccept  Verdict = "accept"
	VerdictDrop    Verdict = "drop"
	VerdictReject  Verdict = "reject"
	VerdictUnknown Verdict = "unknown"
)

// Firewall is the host firewall as far as guest traffic is concerned.
type Firewall struct {
	// Backend that holds the rules: "iptables-nft", "iptables-legacy", "nftables", "none".
	Backend string `json:"backend"`
	// LibvirtChains are libvirt's iptables chains found (LIBVIRT_INP, LIBVIRT_FWO, ...).
	LibvirtChains []string `json:"libvirt_chains,omitempty"`
	// LibvirtUnhooked lists libvirt chains that exist but are no longer jumped to from their
	// built-in chain, as "table/CHAIN" (e.g. "filter/LIBVIRT_FWO"): what `iptables -F` leaves behind,
	// and what a network restart does not repair on libvirt 9 (libvirtd adds the jumps at start-up).
	LibvirtUnhooked []string `json:"libvirt_unhooked,omitempty"`
	// LibvirtNFTable is true when libvirt's native nftables table (libvirt_network) exists.
	LibvirtNFTable bool `json:"libvirt_nftable"`
	// ForwardPolicy is the filter FORWARD chain policy ("ACCEPT", "DROP").
	ForwardPolicy string `json:"forward_policy"`
	// Docker is true when Docker's chains (DOCKER, DOCKER-USER) exist.
	Docker bool `json:"docker"`
	// UFW is UFW's state.
	UFW UFW `json:"ufw"`
	// Firewalld is firewalld's state.
	Firewalld Firewalld `json:"firewalld"`
	// Masquerade lists source subnets that have a MASQUERADE (or SNAT) rule.
	Masquerade []string `json:"masquerade,omitempty"`
	// Flows are the evaluated verdicts for guest traffic of each network.
	Flows []Flow `json:"flows,omitempty"`
	// Read is false when the rules could not be read (not root, tools missing).
	Read bool `json:"read"`
	// Backends lists every backend that holds rules ("iptables-nft", "iptables-legacy", "nftables").
	Backends []string `json:"backends,omitempty"`
	// ForwardPolicySetBy names who set a DROP/REJECT FORWARD policy: "docker", "ufw", "firewalld",
	// several joined with ",", or "unknown"; "" when the policy accepts.
	ForwardPolicySetBy string `json:"forward_policy_set_by,omitempty"`
	// Evidence, key=value words (what was read, which tables exist).
	Evidence string `json:"evidence,omitempty"`
	// Error says why the rules could not be read.
	Error string `json:"error,omitempty"`
}

// UFW is the Uncomplicated Firewall's state, read from its rules and config.
type UFW struct {
	// Enabled is true when UFW's chains are loaded and hooked.
	Enabled bool `json:"enabled"`
	// DefaultRouted is the default routed policy ("deny", "allow", "reject", "disabled").
	DefaultRouted string `json:"default_routed,omitempty"`
	// RouteAllows are "in on X out on Y" route allow rules found.
	RouteAllows []string `json:"route_allows,omitempty"`
	// InputAllows are "in on X" allow rules found (what `ufw allow in on X` adds).
	InputAllows []string `json:"input_allows,omitempty"`
}

// Firewalld is firewalld's state.
type Firewalld struct {
	// Running is true when firewalld runs.
	Running bool `json:"running"`
	// LibvirtZone is true when the libvirt zone exists.
	LibvirtZone bool `json:"libvirt_zone"`
	// LibvirtZoneFile is where the libvirt zone was read ("" when absent or known only at runtime).
	LibvirtZoneFile string `json:"libvirt_zone_file,omitempty"`
	// DefaultZone is the zone of interfaces bound to none (runtime when known, else firewalld.conf).
	DefaultZone string `json:"default_zone,omitempty"`
	// InterfaceZones maps the bridges of libvirt networks to the zone firewalld has them in at runtime
	// (from its nftables table; the default zone for a bridge bound to none). Empty when firewalld's
	// table is absent (the iptables backend).
	InterfaceZones map[string]string `json:"interface_zones,omitempty"`
	// Policies are the policies that reject or drop forwarded traffic from a zone guests are in.
	Policies []FirewalldPolicy `json:"policies,omitempty"`
}

// FirewalldPolicy is a firewalld policy (firewalld >= 0.9) as far as guest traffic is concerned.
type FirewalldPolicy struct {
	// Name of the policy.
	Name string `json:"name"`
	// Target: CONTINUE, ACCEPT, DROP, REJECT.
	Target string `json:"target"`
	// Priority: negative ones run before the zones' rules.
	Priority int `json:"priority"`
	// Ingress and Egress zones (with the pseudo zones ANY and HOST).
	Ingress []string `json:"ingress,omitempty"`
	Egress  []string `json:"egress,omitempty"`
	// Active is true when the policy has chains in firewalld's table.
	Active bool `json:"active"`
	// File it was read from.
	File string `json:"file,omitempty"`
}

// Flow is the evaluated fate of one kind of guest packet.
type Flow struct {
	// Network is the libvirt network name.
	Network string `json:"network"`
	// Description, e.g. "new tcp 192.168.122.0/24 -> uplink eth0 port 80".
	Description string `json:"description"`
	// Kind: "egress" (guest to uplink), "dhcp", "dns" (guest to host).
	Kind string `json:"kind"`
	// Verdict reached.
	Verdict Verdict `json:"verdict"`
	// Rule that decided, as text (e.g. "-A ufw-user-forward ... -j DROP" or "policy DROP of FORWARD").
	Rule string `json:"rule"`
	// Chain where the deciding rule is.
	Chain string `json:"chain"`
	// Trace is the list of chains and rules traversed, for evidence.
	Trace []string `json:"trace,omitempty"`
	// Backend whose rule decided ("iptables-nft", "iptables-legacy", "nftables", "none").
	Backend string `json:"backend,omitempty"`
	// In and Out are the packet's interfaces (Out is "" for packets to the host).
	In  string `json:"in,omitempty"`
	Out string `json:"out,omitempty"`
	// Proto ("tcp", "udp") and DPort of the packet.
	Proto string `json:"proto,omitempty"`
	DPort int    `json:"dport,omitempty"`
	// NAT is the source NAT the packet gets at postrouting ("masquerade", "snat", "" none); egress only.
	NAT string `json:"nat,omitempty"`
	// NATRule is the rule that translates it (or says none matched); egress only.
	NATRule string `json:"nat_rule,omitempty"`
	// Uncertain lists rules with matches the evaluator does not model (assumed not to match).
	Uncertain []string `json:"uncertain,omitempty"`
	// Bridged is true for a frame bridged between a guest tap and the bridge's uplink port (a host
	// bridge, or a libvirt forward mode='bridge' network): it meets the IP hooks only through
	// br_netfilter.
	Bridged bool `json:"bridged,omitempty"`
	// HostBridge is the bridge of a bridged flow.
	HostBridge string `json:"host_bridge,omitempty"`
	// Domain and MAC name the guest NIC a bridged flow was evaluated for.
	Domain string `json:"domain,omitempty"`
	MAC    MAC    `json:"mac,omitempty"`
	// PhysIn and PhysOut are the bridge ports of a bridged flow (guest tap, uplink port).
	PhysIn  string `json:"physdev_in,omitempty"`
	PhysOut string `json:"physdev_out,omitempty"`
	// FirewalldZone and FirewalldPolicy name the firewalld zone or policy whose chain decided the
	// flow ("" when the deciding rule is not firewalld's).
	FirewalldZone   string `json:"firewalld_zone,omitempty"`
	FirewalldPolicy string `json:"firewalld_policy,omitempty"`
	// Sysctl is the br_netfilter setting that put a bridged flow through the IP hooks (or kept it
	// out), e.g. "net.bridge.bridge-nf-call-iptables=1".
	Sysctl string `json:"sysctl,omitempty"`
}
