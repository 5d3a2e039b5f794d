package fixplan

import (
	"fmt"
	"slices"
	"strings"

	"github.com/kvmnet/kvmnet/controller/diagnose"
	"github.com/kvmnet/kvmnet/controller/snapshot"
)

// Host step kinds for firewalld (firewall-cmd, runtime and permanent).
const (
	// StepFirewalldZone binds a libvirt bridge to firewalld's libvirt zone, creating the zone as
	// libvirt ships it when it is missing.
	StepFirewalldZone HostStepKind = "firewalld-zone"
	// StepFirewalldPolicyAccept adds a policy accepting forwarded traffic from the bridge's zone,
	// ordered before the policy that rejects it.
	StepFirewalldPolicyAccept HostStepKind = "firewalld-policy-accept"
)

// Trade-offs of the firewalld repairs, shown with the step.
const (
	firewalldZoneTradeoff = "the bridge %s is bound to the libvirt zone permanently too (libvirt itself binds it only at run time), so the binding " +
		"stays if the network is later removed or renamed; a missing libvirt zone is re-created in /etc/firewalld/zones as libvirt ships it; " +
		"firewalld is reloaded when the zone is created (runtime-only changes of others are lost)"
	firewalldPolicyTradeoff = "policy %s no longer filters forwarded traffic from zone %s: kvmnet's ACCEPT policy runs before it; the rest of its " +
		"traffic is unchanged; firewalld is reloaded (runtime-only changes of others are lost) and %s re-bound to its zone"
)

// firewalld plans the repair of one firewalld finding.
func (p *HostPlan) firewalld(s snapshot.Snapshot, f diagnose.Finding) {
	switch f.Code {
	case diagnose.CodeFirewalldZoneMissing:
		names, _ := f.Get("networks")
		for _, n := range s.Networks {
			if !n.Active || n.Bridge == "" || !slices.Contains(strings.Split(names, ","), n.Name) {
				continue
			}
			p.addStep(f, HostStep{Kind: StepFirewalldZone, Network: n.Name, Bridge: n.Bridge,
				Summary: fmt.Sprintf("bind %s to firewalld's libvirt zone (firewall-cmd, runtime and permanent)", n.Bridge),
				Warning: fmt.Sprintf(firewalldZoneTradeoff, n.Bridge)})
		}
	case diagnose.CodeFirewalldPolicyRejectForward:
		n, ok := s.Networks.Find(f.Network)
		pol, _ := f.Get("firewalld_policy")
		zone := s.Firewall.Firewalld.InterfaceZones[n.Bridge]
		if !ok || n.Bridge == "" || (zone != "libvirt" && zone != "libvirt-routed") {
			p.Manual = append(p.Manual, f)
			return
		}
		p.addStep(f, HostStep{Kind: StepFirewalldPolicyAccept, Network: n.Name, Bridge: n.Bridge,
			Summary: fmt.Sprintf("add firewalld policy kvmnet-%s (ingress %s, egress ANY, target ACCEPT) before policy %s", strings.TrimPrefix(zone, "libvirt-"), zone, pol),
			Warning: fmt.Sprintf(firewalldPolicyTradeoff, pol, zone, n.Bridge)})
	}
}
