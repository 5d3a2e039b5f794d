package diagnose

import (
	"fmt"
	"strings"

	"github.com/kvmnet/kvmnet/controller/snapshot"
)

// passt judges a user-mode NIC on the passt backend by what it is: passt runs in user space and
// copies the host's addresses and routes to the guest (its own DHCP), so there is no tap, bridge,
// libvirt lease or host firewall path to check, and the host reaching the guest only through
// <portForward> is the design, not a fault. Only the guest's own view is judged.
func (gc *guestCtx) passt(n *nicCtx) {
	if gc.st != nil {
		gc.guestNIC(n)
	}
}

// returnRoute is the fact a network without NAT depends on: some router upstream must send the
// subnet's replies back to this host. Its routing table is not visible from here.
func (d *diag) returnRoute(n *snapshot.Network) string {
	if n.Forward != snapshot.ForwardRoute && n.Forward != snapshot.ForwardOpen {
		return ""
	}
	sub := n.Subnet()
	if sub == "" {
		return "unknown: no IPv4 subnet"
	}
	return fmt.Sprintf("unknown: the upstream router must route %s back via this host's address on %s (not visible from this host; check with a ping from the guest and tcpdump -ni %s on the host)",
		sub, d.uplink(), d.uplink())
}

// upstreamReturn explains a guest's failed egress on a routed or open network when nothing on the
// host blocks it (no host cause, ip_forward on, the evaluated egress flow accepted or none
// evaluated): the packets leave with the guest's own address, so the likely cause is an upstream
// router without a route back. ok is false for every other network or when the host blocks.
func (d *diag) upstreamReturn(n *snapshot.Network) (why, fix string, evidence []string, ok bool) {
	if n == nil || (n.Forward != snapshot.ForwardRoute && n.Forward != snapshot.ForwardOpen) {
		return "", "", nil, false
	}
	if d.s.Host.IPForwardKnown && !d.s.Host.IPForward {
		return "", "", nil, false
	}
	verdict := "not evaluated"
	if f, found := d.egressFlow(n.Name); found {
		if f.Verdict != snapshot.VerdictAccept {
			return "", "", nil, false
		}
		verdict = string(f.Verdict)
	}
	sub := n.Subnet()
	if sub == "" {
		sub = "<SUBNET>"
	}
	why = fmt.Sprintf("network %q forwards without NAT (forward mode %s), so replies need a route back to %s on the upstream router; "+
		"this host cannot see that router's routes (return route unknown), and nothing on this host blocks the traffic", n.Name, n.Forward, sub)
	fix = fmt.Sprintf("on the upstream router: ip route add %s via <this host's address on %s> (confirm with tcpdump -ni %s on this host: requests leave, no replies come back); "+
		"or use <forward mode='nat'/> if no router can be changed", sub, d.uplink(), d.uplink())
	evidence = []string{ev("forward", string(n.Forward)), ev("return_route", "unknown"), ev("host_egress", verdict),
		ev("likely_cause", "upstream_return_route")}
	return why, fix, evidence, true
}

// forwardDevMismatch: a NAT or routed network restricted to <forward dev=X> whose evaluated egress
// libvirt's own rules block while the host's default route leaves by another interface. libvirt
// writes X into its rules (-o X), so after a NIC rename or moving X into a bridge every packet to the
// uplink meets libvirt's catch-all REJECT instead.
func (d *diag) forwardDevMismatch(n *snapshot.Network, f snapshot.Flow) bool {
	if n.Forward != snapshot.ForwardNAT && n.Forward != snapshot.ForwardRoute {
		return false
	}
	if n.ForwardDev == "" || d.s.Host.Uplink == "" || n.ForwardDev == d.s.Host.Uplink {
		return false
	}
	return strings.Contains(f.Chain, "LIBVIRT_") || strings.Contains(f.Chain, "libvirt_network")
}
