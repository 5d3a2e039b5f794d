package firewall

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/kvmnet/kvmnet/controller/snapshot"
)

// BridgedPath is one running guest NIC whose frames the host bridges (no routing, no NAT): a
// <interface type='bridge'> on a host bridge, or a NIC of a libvirt forward mode='bridge' network.
type BridgedPath struct {
	// Network is the libvirt network ("" for a host bridge no libvirt network owns).
	Network string
	// Bridge is the host bridge (br0).
	Bridge string
	// Domain and MAC name the guest NIC.
	Domain string
	MAC    snapshot.MAC
	// Tap is the guest's port on the bridge (vnet0).
	Tap string
	// Uplink is the bridge port that leads to the LAN ("" when the bridge has none).
	Uplink string
	// Guest is the address the flows are evaluated from: one in the bridge's own IPv4 subnet, else
	// TEST-NET-1 (the guest's real address is the agent's to tell).
	Guest netip.Addr
}

// unknownGuest stands for a bridged guest whose subnet the host does not know (TEST-NET-1, RFC 5737).
var unknownGuest = netip.MustParseAddr("192.0.2.10")

// BridgedPaths lists the bridged guest NICs of running domains that have a tap on a bridge the host
// reports. Ports of kind tuntap (or named like a tap of a domain) are guests; the first other port is
// the uplink.
func BridgedPaths(nets []snapshot.Network, host snapshot.Host, doms []snapshot.Domain) []BridgedPath {
	taps := map[string]bool{}
	for _, d := range doms {
		for _, nic := range d.NICs {
			if nic.Target != "" {
				taps[nic.Target] = true
			}
		}
	}
	var out []BridgedPath
	for _, d := range doms {
		if !d.Running() {
			continue
		}
		for _, nic := range d.NICs {
			network, bridge, ok := bridgedNIC(nic, nets)
			if !ok || nic.Target == "" {
				continue
			}
			i := slices.IndexFunc(host.Bridges, func(b snapshot.Bridge) bool { return b.Name == bridge })
			if i < 0 {
				continue
			}
			br := host.Bridges[i]
			out = append(out, BridgedPath{Network: network, Bridge: bridge, Domain: d.Name, MAC: nic.MAC, Tap: nic.Target,
				Uplink: UplinkPort(br, taps), Guest: bridgeGuestAddr(br)})
		}
	}
	return out
}

// bridgedNIC returns the network and bridge of a bridged NIC.
func bridgedNIC(nic snapshot.DomainNIC, nets []snapshot.Network) (network, bridge string, ok bool) {
	switch nic.Type {
	case "bridge":
		return "", nic.Bridge, nic.Bridge != ""
	case "network":
		for _, n := range nets {
			if n.Name == nic.Network && n.Forward == snapshot.ForwardBridge && n.Bridge != "" {
				return n.Name, n.Bridge, true
			}
		}
	}
	return "", "", false
}

// UplinkPort returns the bridge's port towards the LAN: the first port that is neither a tap nor
// one of the given guest taps ("" when there is none).
func UplinkPort(br snapshot.Bridge, taps map[string]bool) string {
	for _, p := range br.PortInfo {
		if p.Kind != "tuntap" && !taps[p.Name] {
			return p.Name
		}
	}
	if len(br.PortInfo) == 0 {
		for _, p := range br.Ports {
			if !taps[p] && !strings.HasPrefix(p, "vnet") && !strings.HasPrefix(p, "tap") {
				return p
			}
		}
	}
	return ""
}

func bridgeGuestAddr(br snapshot.Bridge) netip.Addr {
	for _, a := range br.Addresses {
		p, err := netip.ParsePrefix(a)
		if err != nil || !p.Addr().Is4() || p.Bits() > 30 {
			continue
		}
		if g := p.Addr().Next(); p.Masked().Contains(g) {
			return g
		}
	}
	return unknownGuest
}

// BridgedFlows evaluates the frames of each bridged path at the forward hook as br_netfilter hands
// them to the IP hooks (in and out the bridge device, physdev-in/out the ports): new tcp to ports 80
// and 443 and a DHCP broadcast from the guest's tap to the uplink port, and the established return.
// With bridge-nf-call-iptables=0 (or br_netfilter absent) bridged IPv4 never meets iptables or
// ip/inet nftables: the flows accept, and say which sysctl decided. nftables tables of the bridge
// family see bridged frames whatever the sysctl; they are listed as not evaluated.
func (s *State) BridgedFlows(paths []BridgedPath, bnf snapshot.BridgeNetfilter) []snapshot.Flow {
	var out []snapshot.Flow
	sysctl := snapshot.BridgeNFCallIPTables + "=unknown"
	if bnf.Known {
		sysctl = fmt.Sprintf("%s=%d", snapshot.BridgeNFCallIPTables, b2i(bnf.CallIPTables))
		if !bnf.Loaded {
			sysctl = "br_netfilter=absent"
		}
	}
	bridgeTables := s.bridgeFamilyChains()
	for _, bp := range paths {
		if bp.Uplink == "" {
			continue // nothing to bridge to: diagnose reports the bridge itself
		}
		add := func(kind, desc string, p Packet) {
			f := snapshot.Flow{Network: bp.Network, Description: desc, Kind: kind, Bridged: true, HostBridge: bp.Bridge,
				Domain: bp.Domain, MAC: bp.MAC, PhysIn: p.PhysIn, PhysOut: p.PhysOut, Sysctl: sysctl,
				In: p.In, Out: p.Out, Proto: p.Proto, DPort: int(p.DPort)}
			if bnf.Known && !bnf.IPv4Filtered() {
				f.Verdict, f.Backend, f.Chain = snapshot.VerdictAccept, "none", ""
				f.Rule = "not filtered: " + sysctl + " (bridged frames bypass iptables and ip/inet nftables)"
			} else {
				r := s.Evaluate(HookForward, p)
				f.Verdict, f.Rule, f.Chain, f.Backend, f.Trace, f.Uncertain = snapshot.Verdict(r.Verdict), r.Rule, r.Chain, r.Backend, r.Trace, r.Uncertain
				if f.Verdict != snapshot.VerdictAccept && f.Verdict != snapshot.VerdictDrop && f.Verdict != snapshot.VerdictReject {
					f.Verdict = snapshot.VerdictUnknown
				}
			}
			f.Uncertain = append(f.Uncertain, bridgeTables...)
			out = append(out, f)
		}
		base := Packet{In: bp.Bridge, Out: bp.Bridge, BrNF: true, PhysIn: bp.Tap, PhysOut: bp.Uplink}
		for _, port := range []uint16{80, 443} {
			p := base
			p.Src, p.Dst, p.Proto, p.SPort, p.DPort, p.State = bp.Guest, ProbeAddr, "tcp", 40000, port, StateNew
			add("egress", fmt.Sprintf("bridged new tcp %s -> LAN port %d on %s (%s -> %s)", bp.Guest, port, bp.Bridge, bp.Tap, bp.Uplink), p)
		}
		ret := Packet{In: bp.Bridge, Out: bp.Bridge, BrNF: true, PhysIn: bp.Uplink, PhysOut: bp.Tap,
			Src: ProbeAddr, Dst: bp.Guest, Proto: "tcp", SPort: 80, DPort: 40000, State: StateEstablished}
		add("return", fmt.Sprintf("bridged established tcp port 80 -> %s on %s (%s -> %s)", bp.Guest, bp.Bridge, bp.Uplink, bp.Tap), ret)
		dh := base
		dh.Src, dh.Dst, dh.Proto, dh.SPort, dh.DPort, dh.State = netip.IPv4Unspecified(), netip.AddrFrom4([4]byte{255, 255, 255, 255}), "udp", 68, 67, StateNew
		add("dhcp", fmt.Sprintf("bridged dhcp udp 0.0.0.0:68 -> 255.255.255.255:67 on %s (%s -> %s, to the LAN's DHCP server)", bp.Bridge, bp.Tap, bp.Uplink), dh)
	}
	return out
}

// bridgeFamilyChains names the forward base chains of nftables bridge-family tables (not modelled).
func (s *State) bridgeFamilyChains() []string {
	if s.NFTables == nil {
		return nil
	}
	var out []string
	for _, t := range s.NFTables.Tables {
		if t.Family != "bridge" {
			continue
		}
		for _, c := range t.Chains {
			if c.Hook == "forward" {
				out = append(out, fmt.Sprintf("nftables bridge %s %s (bridge family: not evaluated)", t.Name, c.Name))
			}
		}
	}
	return out
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
