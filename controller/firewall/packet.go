package firewall

import (
	"fmt"
	"net/netip"
	"strings"
)

// Hook is a netfilter hook the evaluator walks.
type Hook string

// Hooks.
const (
	// HookForward is for packets routed through the host (guest to uplink and back).
	HookForward Hook = "forward"
	// HookInput is for packets addressed to the host (guest to the bridge IP: DHCP, DNS).
	HookInput Hook = "input"
	// HookPostrouting is where source NAT (MASQUERADE) happens.
	HookPostrouting Hook = "postrouting"
)

// Conntrack states a packet can have.
const (
	StateNew         = "NEW"
	StateEstablished = "ESTABLISHED"
	StateRelated     = "RELATED"
)

// Packet describes the packet to evaluate. Interface names are the kernel's (virbr0, eth0).
type Packet struct {
	// In is the input interface ("" at output/postrouting for locally generated packets).
	In string
	// Out is the output interface ("" at input).
	Out string
	// Src and Dst addresses (IPv4 only is modelled for rules; IPv6 packets match no IPv4 rule).
	Src, Dst netip.Addr
	// Proto: "tcp", "udp" or "icmp".
	Proto string
	// SPort and DPort for tcp/udp.
	SPort, DPort uint16
	// State is the conntrack state: NEW, ESTABLISHED, RELATED.
	State string
	// DstLocal is true when Dst is one of the host's own addresses (always true at the input hook).
	DstLocal bool
	// BrNF is true when the packet carries br_netfilter's bridge info: it entered through a port of a
	// bridge while bridge-nf-call-iptables was 1. For a bridged frame In and Out are then both the
	// bridge device, as the IP hooks see it.
	BrNF bool
	// PhysIn is the bridge port the frame entered by (vnet0, eth0); "" without BrNF.
	PhysIn string
	// PhysOut is the bridge port a bridged frame leaves by; "" for routed packets (the kernel's test
	// for "is bridged").
	PhysOut string
}

// String renders the packet for traces, e.g. "new tcp 192.168.122.2:40000 -> 198.51.100.1:80 in virbr0 out eth0".
func (p Packet) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s", strings.ToLower(p.State), p.Proto, p.Src)
	if p.SPort != 0 {
		fmt.Fprintf(&b, ":%d", p.SPort)
	}
	fmt.Fprintf(&b, " -> %s", p.Dst)
	if p.DPort != 0 {
		fmt.Fprintf(&b, ":%d", p.DPort)
	}
	if p.In != "" {
		fmt.Fprintf(&b, " in %s", p.In)
	}
	if p.Out != "" {
		fmt.Fprintf(&b, " out %s", p.Out)
	}
	if p.PhysIn != "" {
		fmt.Fprintf(&b, " physdev-in %s", p.PhysIn)
	}
	if p.PhysOut != "" {
		fmt.Fprintf(&b, " physdev-out %s (bridged)", p.PhysOut)
	}
	return b.String()
}

// dstType is the addrtype of the destination.
func (p Packet) dstType() string {
	switch {
	case p.Dst == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "BROADCAST"
	case p.Dst.IsMulticast():
		return "MULTICAST"
	case p.DstLocal:
		return "LOCAL"
	default:
		return "UNICAST"
	}
}

func (p Packet) srcType() string {
	if !p.Src.IsValid() || p.Src.IsUnspecified() {
		return "UNSPEC"
	}
	return "UNICAST"
}

// ifaceMatches implements iptables/nft interface name matching with a trailing wildcard
// ("+" for iptables, "*" for nft).
func ifaceMatches(pattern, name string) bool {
	if strings.HasSuffix(pattern, "+") || strings.HasSuffix(pattern, "*") {
		return strings.HasPrefix(name, pattern[:len(pattern)-1])
	}
	return pattern == name
}

// Result is the outcome of evaluating one packet at one hook over every backend's base chains.
type Result struct {
	// Verdict: accept, drop, reject (or unknown when nothing could be evaluated).
	Verdict string `json:"verdict"`
	// Rule that decided, as text; for a policy: "policy DROP of FORWARD".
	Rule string `json:"rule"`
	// Chain holding the deciding rule, qualified: "iptables-nft filter FORWARD",
	// "nftables ip libvirt_network guest_output".
	Chain string `json:"chain"`
	// Backend that decided: iptables-nft, iptables-legacy or nftables.
	Backend string `json:"backend"`
	// NAT is "masquerade", "snat" or "" (postrouting only).
	NAT string `json:"nat,omitempty"`
	// Trace lists every base chain visited and every rule that matched, in order.
	Trace []string `json:"trace"`
	// Uncertain lists rules with matches the evaluator does not model; they were assumed not to match.
	Uncertain []string `json:"uncertain,omitempty"`
}

// Verdict words.
const (
	verdictAccept = "accept"
	verdictDrop   = "drop"
	verdictReject = "reject"
)

// chainVerdict is the outcome of one base chain.
type chainVerdict struct {
	verdict string // accept, drop, reject, or "" for a nat base chain that did not translate
	nat     string
	rule    string
	chain   string
	policy  bool
}

// baseChain is one hooked chain of any backend.
type baseChain struct {
	backend string
	name    string // qualified, for traces
	prio    int
	nat     bool
	order   int
	policy  string // the base chain's policy, lower case
	eval    func(p Packet, tr *tracer) chainVerdict
}

// tracer collects the trace and uncertain rules of an evaluation.
type tracer struct {
	lines     []string
	uncertain []string
	steps     int
}

func (t *tracer) add(format string, args ...any) {
	t.lines = append(t.lines, fmt.Sprintf(format, args...))
}

// maxSteps bounds rule visits per evaluation: a ruleset with a jump loop (which the kernel refuses to
// load, but a hand-written dump may hold) ends as "unknown" instead of hanging.
const maxSteps = 100000
