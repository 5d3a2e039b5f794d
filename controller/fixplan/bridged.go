package fixplan

import (
	"fmt"

	"github.com/kvmnet/kvmnet/controller/diagnose"
	"github.com/kvmnet/kvmnet/controller/snapshot"
)

// HostOptions choose between repairs of the same finding.
type HostOptions struct {
	// BridgeNFOff answers bridge_netfilter_drop by setting net.bridge.bridge-nf-call-iptables=0
	// (now and in /etc/sysctl.d) instead of an ACCEPT rule for the bridge's bridged frames.
	BridgeNFOff bool
}

// Host step kinds for bridged guests.
const (
	// StepBridgedAccept inserts `-i BR -o BR -m physdev --physdev-is-bridged -j ACCEPT` into
	// DOCKER-USER (Docker's rules decided) or FORWARD of the iptables world that dropped the frames.
	StepBridgedAccept HostStepKind = "bridged-accept"
	// StepBridgeNFOff sets net.bridge.bridge-nf-call-iptables=0 now and in /etc/sysctl.d.
	StepBridgeNFOff HostStepKind = "bridge-nf-off"
)

// Trade-offs of the two repairs, shown with the step.
const (
	bridgedAcceptTradeoff = "accepts every frame bridged on %s in the FORWARD hook: iptables rules no longer filter those guests' LAN traffic " +
		"(as with br_netfilter off); Docker's FORWARD policy and its own bridges are untouched; the rule is lost at reboot unless saved (netfilter-persistent save)"
	bridgeNFOffTradeoff = "no iptables or ip/inet nftables rule sees any bridged IPv4 frame in this namespace any more: Docker's isolation between " +
		"containers on one bridge (icc=false) stops working and dockerd sets the sysctl back to 1 when it starts; " +
		"the file applies at boot only when br_netfilter is loaded by then (add br_netfilter to /etc/modules-load.d)"
)

// bridgeNetfilter plans the repair of one bridge_netfilter_drop finding. A drop decided by native
// nftables is left to the user (an iptables accept does not override another table's drop).
func (p *HostPlan) bridgeNetfilter(s snapshot.Snapshot, f diagnose.Finding, opts HostOptions) {
	bridge, _ := f.Get("bridge")
	backend, _ := f.Get("backend")
	if opts.BridgeNFOff {
		p.addStep(f, HostStep{Kind: StepBridgeNFOff,
			Summary: fmt.Sprintf("set %s=0 now and persist it in /etc/sysctl.d/99-kvmnet-bridge-nf.conf", snapshot.BridgeNFCallIPTables),
			Warning: bridgeNFOffTradeoff})
		return
	}
	if bridge == "" || (backend != "iptables-nft" && backend != "iptables-legacy") {
		p.Manual = append(p.Manual, f)
		return
	}
	chain := "FORWARD"
	if s.Firewall.Docker {
		chain = "DOCKER-USER"
	}
	p.addStep(f, HostStep{Kind: StepBridgedAccept, Network: f.Network, Bridge: bridge, Backend: backend, Chain: chain,
		Summary: fmt.Sprintf("accept frames bridged on %s in %s %s (-i %s -o %s -m physdev --physdev-is-bridged); or use --bridge-nf-off", bridge, backend, chain, bridge, bridge),
		Warning: fmt.Sprintf(bridgedAcceptTradeoff, bridge)})
}
