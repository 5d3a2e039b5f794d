package firewall

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/kvmnet/kvmnet/controller/snapshot"
)

// ProbeAddr is the outside address egress flows are evaluated towards (TEST-NET-2, RFC 5737): a
// stand-in for "somewhere on the internet".
var ProbeAddr = netip.MustParseAddr("198.51.100.10")

// iptDumps returns the non-empty iptables dumps.
func (s *State) iptDumps() []*IPTables {
	var out []*IPTables
	for _, d := range []*IPTables{s.IPTablesNFT, s.IPTablesLegacy} {
		if !d.Empty() {
			out = append(out, d)
		}
	}
	return out
}

// nativeTables returns nft tables that are not iptables-nft's.
func (s *State) nativeTables() []*NFTable {
	if s.NFTables == nil {
		return nil
	}
	s.reconcile()
	var out []*NFTable
	for _, t := range s.NFTables.Tables {
		if t.ManagedBy == "" {
			out = append(out, t)
		}
	}
	return out
}

// Snapshot summarises the state for the controller: backends, libvirt's chains or table, NAT,
// FORWARD policy and who set it, Docker, UFW, firewalld, and evaluated flows for each active
// libvirt network with a bridge and an IPv4 subnet. uplink is the host's default-route interface
// ("" when unknown: egress flows then leave through an unnamed interface).
func (s *State) Snapshot(nets []snapshot.Network, uplink string) snapshot.Firewall {
	fw := snapshot.Firewall{Read: true}
	for _, d := range s.iptDumps() {
		fw.Backends = append(fw.Backends, "iptables-"+d.Variant)
	}
	if len(s.nativeTables()) > 0 {
		fw.Backends = append(fw.Backends, "nftables")
	}

	libvirtChains := map[string]bool{}
	masq := map[string]bool{}
	dockerChains, ufwChains, ufwHooked := false, false, false
	libvirtBackend := ""
	for _, d := range s.iptDumps() {
		for _, t := range d.Tables {
			for _, c := range t.Chains {
				switch {
				case strings.HasPrefix(c.Name, "LIBVIRT_"):
					libvirtChains[c.Name] = true
					libvirtBackend = "iptables-" + d.Variant
				case c.Name == "DOCKER" || c.Name == "DOCKER-USER":
					dockerChains = true
				case strings.HasPrefix(c.Name, "ufw-") || strings.HasPrefix(c.Name, "ufw6-"):
					ufwChains = true
				}
				for _, r := range c.Rules {
					if t.Name == "filter" && (c.Name == "INPUT" || c.Name == "FORWARD") && strings.HasPrefix(r.Target, "ufw-") {
						ufwHooked = true
					}
					if t.Name == "nat" && (r.Target == "MASQUERADE" || r.Target == "SNAT") {
						if r.Src != nil && !r.Src.Neg {
							masq[r.Src.Prefix.String()] = true
						} else {
							masq["0.0.0.0/0"] = true
						}
					}
				}
			}
		}
		if f := d.Table("filter").Chain("FORWARD"); f != nil {
			if fw.ForwardPolicy == "" || f.Policy != "ACCEPT" {
				fw.ForwardPolicy = f.Policy
			}
		}
	}
	for _, t := range s.nativeTables() {
		if t.Name == "libvirt_network" {
			fw.LibvirtNFTable = true
			if libvirtBackend == "" {
				libvirtBackend = "nftables"
			}
		}
		for _, c := range t.Chains {
			for _, r := range c.Rules {
				for _, e := range r.exprs {
					if e.stmt == "masquerade" || e.stmt == "snat" {
						masq[nftSaddr(r)] = true
					}
				}
			}
		}
	}
	fw.LibvirtChains = sortedKeys(libvirtChains)
	fw.LibvirtUnhooked = s.libvirtUnhooked()
	fw.Masquerade = sortedKeys(masq)
	fw.Docker = dockerChains
	switch {
	case libvirtBackend != "":
		fw.Backend = libvirtBackend
	case len(fw.Backends) > 0:
		fw.Backend = fw.Backends[0]
	default:
		fw.Backend = "none"
	}

	// UFW.
	fw.UFW.Enabled = ufwChains && ufwHooked
	if fw.UFW.Enabled || ufwChains || s.UFWDefaults != nil {
		switch strings.ToUpper(s.UFWDefaults["DEFAULT_FORWARD_POLICY"]) {
		case "DROP":
			fw.UFW.DefaultRouted = "deny"
		case "ACCEPT":
			fw.UFW.DefaultRouted = "allow"
		case "REJECT":
			fw.UFW.DefaultRouted = "reject"
		}
	}
	for _, d := range s.iptDumps() {
		f := d.Table("filter")
		for _, r := range chainRules(f, "ufw-user-forward") {
			if r.Target == "ACCEPT" {
				fw.UFW.RouteAllows = append(fw.UFW.RouteAllows, ufwRuleText(r))
			}
		}
		for _, r := range chainRules(f, "ufw-user-input") {
			if r.Target == "ACCEPT" {
				fw.UFW.InputAllows = append(fw.UFW.InputAllows, ufwRuleText(r))
			}
		}
	}

	// firewalld.
	fw.Firewalld = s.firewalldSnapshot(nets)

	// Who set a dropping FORWARD policy.
	if fw.ForwardPolicy != "" && fw.ForwardPolicy != "ACCEPT" {
		var who []string
		if fw.Docker {
			who = append(who, "docker")
		}
		if fw.UFW.Enabled {
			who = append(who, "ufw")
		}
		if fw.Firewalld.Running {
			who = append(who, "firewalld")
		}
		if len(who) == 0 {
			who = []string{"unknown"}
		}
		fw.ForwardPolicySetBy = strings.Join(who, ",")
	}

	ev := append([]string(nil), s.Evidence...)
	if len(fw.LibvirtUnhooked) > 0 {
		ev = append(ev, "libvirt_unhooked="+strings.Join(fw.LibvirtUnhooked, ","))
	}
	ev = append(ev, fmt.Sprintf("libvirt_chains=%d", len(fw.LibvirtChains)),
		fmt.Sprintf("libvirt_nftable=%t", fw.LibvirtNFTable),
		fmt.Sprintf("forward_policy=%s", orDash(fw.ForwardPolicy)),
		fmt.Sprintf("docker_chains=%t", fw.Docker),
		fmt.Sprintf("ufw_chains=%t", ufwChains), fmt.Sprintf("ufw_hooked=%t", ufwHooked),
		fmt.Sprintf("masquerade=%s", orDash(strings.Join(fw.Masquerade, ","))))
	fw.Evidence = strings.Join(ev, " ")
	if len(s.Errors) > 0 {
		fw.Error = strings.Join(s.Errors, "; ")
	}

	for _, n := range nets {
		fw.Flows = append(fw.Flows, s.NetworkFlows(n, uplink)...)
	}
	return fw
}

// nameFirewalldOwner names the firewalld zone or policy whose chain decided the flow.
func nameFirewalldOwner(f *snapshot.Flow) {
	chain, ok := firewalldChain(f.Chain)
	if !ok {
		return
	}
	switch kind, name := FirewalldChainOwner(chain); kind {
	case "zone":
		f.FirewalldZone = name
	case "policy":
		f.FirewalldPolicy = name
	}
}

// firewalldSnapshot summarises firewalld for the libvirt networks nets: the zone each bridge is in
// at runtime, and the policies that reject or drop forwarded traffic from a zone guests are in.
func (s *State) firewalldSnapshot(nets []snapshot.Network) snapshot.Firewalld {
	out := snapshot.Firewalld{Running: s.FirewalldRunning, LibvirtZone: s.FirewalldLibvirtZone}
	cfg := s.Firewalld
	if cfg == nil {
		return out
	}
	if z, ok := cfg.Zone("libvirt"); ok {
		out.LibvirtZoneFile = z.File
	}
	out.DefaultZone = cfg.DefaultZone
	guestZones := map[string]bool{"ANY": true}
	if rt := cfg.Runtime; rt != nil {
		if rt.FallbackZone != "" {
			out.DefaultZone = rt.FallbackZone
		}
		for _, n := range nets {
			if n.Bridge == "" || !n.Active {
				continue
			}
			if out.InterfaceZones == nil {
				out.InterfaceZones = map[string]string{}
			}
			z := cfg.ZoneOf(n.Bridge)
			out.InterfaceZones[n.Bridge] = z
			guestZones[z] = true
		}
	} else {
		guestZones["libvirt"] = true
	}
	for _, p := range cfg.Policies {
		if !p.Rejects() || !p.Forwards() || !slices.ContainsFunc(p.Ingress, func(z string) bool { return guestZones[z] }) {
			continue
		}
		active := cfg.Runtime != nil && slices.Contains(cfg.Runtime.Policies, p.Name)
		out.Policies = append(out.Policies, snapshot.FirewalldPolicy{Name: p.Name, Target: p.Target, Priority: p.Priority,
			Ingress: p.Ingress, Egress: p.Egress, Active: active, File: p.File})
	}
	return out
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func chainRules(t *Table, name string) []*Rule {
	if c := t.Chain(name); c != nil {
		return c.Rules
	}
	return nil
}

// ufwRuleText renders a ufw-user-* rule the way ufw's commands say it: "in on virbr0 out on eth0".
func ufwRuleText(r *Rule) string {
	var p []string
	if r.In != nil {
		p = append(p, "in on "+r.In.Name)
	}
	if r.Out != nil {
		p = append(p, "out on "+r.Out.Name)
	}
	if r.Src != nil {
		p = append(p, "from "+r.Src.Prefix.String())
	}
	if r.Dst != nil {
		p = append(p, "to "+r.Dst.Prefix.String())
	}
	if r.DPort != nil {
		var ports []string
		for _, rg := range r.DPort.Ranges {
			if rg[0] == rg[1] {
				ports = append(ports, fmt.Sprint(rg[0]))
			} else {
				ports = append(ports, fmt.Sprintf("%d:%d", rg[0], rg[1]))
			}
		}
		s := "port " + strings.Join(ports, ",")
		if r.Proto != nil {
			s += "/" + r.Proto.Values[0]
		}
		p = append(p, s)
	}
	if len(p) == 0 {
		return "anywhere"
	}
	return strings.Join(p, " ")
}

func nftSaddr(r *NFRule) string {
	for _, e := range r.exprs {
		if e.match != nil && e.match.left.kind == "payload" && e.match.left.key == "saddr" && e.match.op != "!=" && len(e.match.right) == 1 {
			v := e.match.right[0]
			if v.prefix != "" {
				if p, err := netip.ParsePrefix(v.prefix); err == nil {
					return p.Masked().String()
				}
			}
			return v.String()
		}
	}
	return "0.0.0.0/0"
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// guestAddr picks a plausible guest address in the network: the DHCP range start, else the host
// address + 1.
func guestAddr(ip snapshot.NetworkIP) (netip.Addr, bool) {
	for _, r := range ip.DHCPRanges {
		if a, err := netip.ParseAddr(r.Start); err == nil {
			return a, true
		}
	}
	a, err := netip.ParseAddr(ip.Address)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Next(), true
}

// NetworkFlows evaluates the guest flows of one network: new TCP egress to ports 80 and 443 from
// the subnet to the uplink (with the source NAT it gets), the established return path, DHCP to the
// host, and DNS (udp and tcp) to the bridge IP. Inactive networks and networks without a bridge
// or IPv4 address yield none.
func (s *State) NetworkFlows(n snapshot.Network, uplink string) []snapshot.Flow {
	if !n.Active || n.Bridge == "" {
		return nil
	}
	var ip4 *snapshot.NetworkIP
	for i := range n.IPs {
		if n.IPs[i].Family == 4 && n.IPs[i].Address != "" {
			ip4 = &n.IPs[i]
			break
		}
	}
	if ip4 == nil {
		return nil
	}
	host, err := netip.ParseAddr(ip4.Address)
	if err != nil {
		return nil
	}
	guest, ok := guestAddr(*ip4)
	if !ok {
		return nil
	}
	subnet := n.Subnet()
	uplinkText := uplink
	if uplinkText == "" {
		uplinkText = "(no default route)"
	}
	var flows []snapshot.Flow
	add := func(kind, desc string, hook Hook, p Packet) Result {
		r := s.Evaluate(hook, p)
		f := snapshot.Flow{Network: n.Name, Description: desc, Kind: kind, Verdict: snapshot.Verdict(r.Verdict),
			Rule: r.Rule, Chain: r.Chain, Trace: r.Trace, Backend: r.Backend, In: p.In, Out: p.Out,
			Proto: p.Proto, DPort: int(p.DPort), Uncertain: r.Uncertain}
		if f.Verdict != snapshot.VerdictAccept && f.Verdict != snapshot.VerdictDrop && f.Verdict != snapshot.VerdictReject {
			f.Verdict = snapshot.VerdictUnknown
		}
		nameFirewalldOwner(&f)
		if kind == "egress" {
			nat := s.Evaluate(HookPostrouting, p)
			f.NAT, f.NATRule = nat.NAT, nat.Rule
			if nat.Verdict != verdictAccept {
				f.NATRule = fmt.Sprintf("%s in %s: %s", nat.Verdict, nat.Chain, nat.Rule)
			}
		}
		flows = append(flows, f)
		return r
	}
	for _, port := range []uint16{80, 443} {
		add("egress", fmt.Sprintf("new tcp %s -> uplink %s port %d", subnet, uplinkText, port), HookForward,
			Packet{In: n.Bridge, Out: uplink, Src: guest, Dst: ProbeAddr, Proto: "tcp", SPort: 40000, DPort: port, State: StateNew})
	}
	add("return", fmt.Sprintf("established tcp uplink %s port 80 -> %s", uplinkText, subnet), HookForward,
		Packet{In: uplink, Out: n.Bridge, Src: ProbeAddr, Dst: guest, Proto: "tcp", SPort: 80, DPort: 40000, State: StateEstablished})
	if n.HasDHCP() {
		add("dhcp", fmt.Sprintf("dhcp udp 0.0.0.0:68 -> 255.255.255.255:67 on %s", n.Bridge), HookInput,
			Packet{In: n.Bridge, Src: netip.IPv4Unspecified(), Dst: netip.AddrFrom4([4]byte{255, 255, 255, 255}),
				Proto: "udp", SPort: 68, DPort: 67, State: StateNew, DstLocal: true})
	}
	// DNS is evaluated even when libvirt's DNS is off (<dns enable='no'>): the verdict still tells
	// whether a resolver on the bridge IP would be reachable.
	for _, proto := range []string{"udp", "tcp"} {
		add("dns", fmt.Sprintf("dns %s %s -> %s:53 on %s", proto, guest, host, n.Bridge), HookInput,
			Packet{In: n.Bridge, Src: guest, Dst: host, Proto: proto, SPort: 40001, DPort: 53, State: StateNew, DstLocal: true})
	}
	return flows
}
