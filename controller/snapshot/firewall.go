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
}

// Firewalld is firewalld's state.
type Firewalld struct {
	// Running is true when firewalld runs.
	Running bool `json:"running"`
	// LibvirtZone is true when the libvirt zone exists.
	LibvirtZone bool `json:"libvirt_zone"`
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
}
