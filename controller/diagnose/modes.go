package diagnose

import (
	"fmt"

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
