package diagnose

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/kvmnet/kvmnet/controller/snapshot"
)

// bridgeUse is one host bridge that guests are plugged into directly (type='bridge', or a libvirt
// forward mode='bridge' network), with the NICs that use it.
type bridgeUse struct {
	name    string
	network string // the forward mode='bridge' network, "" for a bridge no libvirt network owns
	running []string
	all     []string
	nics    []bridgedNIC
}

type bridgedNIC struct {
	domain string
	nic    snapshot.DomainNIC
}

// bridgeUses groups the bridged NICs by bridge, sorted by bridge name.
func (d *diag) bridgeUses() []*bridgeUse {
	by := map[string]*bridgeUse{}
	for _, dom := range d.s.Domains {
		for _, nic := range dom.NICs {
			name, network := "", ""
			switch nic.Type {
			case "bridge":
				if d.s.Networks.NameOf(nic) != "" {
					continue // a libvirt network's own bridge (virbr0): judged with the network
				}
				name = nic.Bridge
			case "network":
				if n, ok := d.nets[nic.Network]; ok && n.Active && n.Forward == snapshot.ForwardBridge {
					name, network = n.Bridge, n.Name
				}
			}
			if name == "" {
				continue
			}
			u := by[name]
			if u == nil {
				u = &bridgeUse{name: name, network: network}
				by[name] = u
			}
			if !slices.Contains(u.all, dom.Name) {
				u.all = append(u.all, dom.Name)
			}
			if dom.Running() {
				if !slices.Contains(u.running, dom.Name) {
					u.running = append(u.running, dom.Name)
				}
				u.nics = append(u.nics, bridgedNIC{domain: dom.Name, nic: nic})
			}
		}
	}
	out := make([]*bridgeUse, 0, len(by))
	for _, u := range by {
		out = append(out, u)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// hostBridges judges each bridge guests are plugged into directly: it exists and is up, has an
// uplink port that is up, and the guests' taps and the uplink forward (STP port state).
func (d *diag) hostBridges() {
	if !d.s.Host.Read {
		return
	}
	taps := map[string]bool{}
	for _, dom := range d.s.Domains {
		for _, nic := range dom.NICs {
			if nic.Target != "" {
				taps[nic.Target] = true
			}
		}
	}
	for _, u := range d.bridgeUses() {
		sev := SeverityWarning
		if len(u.running) > 0 {
			sev = SeverityError
		}
		base := []string{ev("bridge", u.name), ev("network", orNone(u.network)), ev("used_by", u.all), ev("running", u.running)}
		br, ok := d.bridges[u.name]
		if u.network == "" && (!ok || !br.AdminUp) {
			summary := fmt.Sprintf("host bridge %s, used by %s, does not exist: their NICs cannot start or have nothing to attach to", u.name, strings.Join(u.all, ", "))
			fix := fmt.Sprintf("create it with the uplink enslaved, e.g. nmcli connection add type bridge ifname %s con-name %s && nmcli connection add type bridge-slave ifname ETH master %s (netplan: bridges: %s: interfaces: [ETH])",
				u.name, u.name, u.name, u.name)
			evd := append(base, ev("bridge_present", ok))
			if ok {
				summary = fmt.Sprintf("host bridge %s, used by %s, is administratively down (oper_state=%s): bridged guests have no link to the LAN", u.name, strings.Join(u.all, ", "), br.OperState)
				fix = "ip link set dev " + u.name + " up (and make it persistent in the tool that defines the bridge: NetworkManager, netplan, ifupdown)"
				evd = append(evd, ev("admin_up", false), ev("oper_state", br.OperState))
			}
			d.addBridged(u.name, Finding{Code: CodeHostBridgeDown, Severity: sev, Subject: subjectHost, Network: u.network,
				Summary: summary, Fix: fix, Evidence: evd})
			continue
		}
		if !ok {
			continue // bridge_down of the network says it
		}
		d.bridgeUplink(u, br, taps, sev, base)
		d.bridgePorts(u, br, base)
	}
}

func (d *diag) bridgeUplink(u *bridgeUse, br *snapshot.Bridge, taps map[string]bool, sev Severity, base []string) {
	var uplinks []snapshot.BridgePort
	for _, p := range br.PortInfo {
		if p.Kind != "tuntap" && !taps[p.Name] {
			uplinks = append(uplinks, p)
		}
	}
	if len(br.PortInfo) == 0 && len(br.Ports) > 0 {
		return // ports without details (an older collector): nothing to judge
	}
	if len(uplinks) == 0 {
		d.addBridged(u.name, Finding{Code: CodeHostBridgeNoUplink, Severity: sev, Subject: subjectHost, Network: u.network,
			Summary: fmt.Sprintf("host bridge %s has no uplink enslaved (ports: %s): guests on it (%s) reach each other and the host, not the LAN or its DHCP server",
				u.name, orNone(strings.Join(br.Ports, ",")), strings.Join(u.all, ", ")),
			Fix:      fmt.Sprintf("enslave the LAN interface: ip link set dev ETH master %s (persist it: nmcli connection add type bridge-slave ifname ETH master %s, or netplan bridges: %s: interfaces: [ETH])", u.name, u.name, u.name),
			Evidence: append(base, ev("ports", br.Ports), ev("uplink_port", "none"))})
		return
	}
	var up []string
	var down []string
	for _, p := range uplinks {
		if p.AdminUp && (p.OperState == "up" || p.OperState == "unknown") {
			up = append(up, p.Name)
		} else {
			down = append(down, fmt.Sprintf("%s(admin_up=%t,oper_state=%s)", p.Name, p.AdminUp, p.OperState))
		}
	}
	if len(up) == 0 {
		d.addBridged(u.name, Finding{Code: CodeHostBridgeNoUplink, Severity: sev, Subject: subjectHost, Network: u.network,
			Summary: fmt.Sprintf("the uplink port of host bridge %s is down (%s): bridged guests (%s) have no way to the LAN",
				u.name, strings.Join(down, ", "), strings.Join(u.all, ", ")),
			Fix:      fmt.Sprintf("ip link set dev %s up, and check its cable/carrier (ip -d link show %s)", uplinks[0].Name, uplinks[0].Name),
			Evidence: append(base, ev("uplink_port", uplinks[0].Name), ev("uplink_state", strings.Join(down, ",")))})
	}
}

// bridgePorts reports guest taps (and the uplink) whose bridge port does not forward.
func (d *diag) bridgePorts(u *bridgeUse, br *snapshot.Bridge, base []string) {
	for _, bn := range u.nics {
		if bn.nic.Target == "" || bn.nic.LinkState == "down" {
			continue // guest_nic_link_down says it
		}
		p, ok := br.Port(bn.nic.Target)
		if !ok || p.STPState == "" || p.STPState == "forwarding" {
			continue
		}
		sev, why := SeverityError, "the bridge passes no frame to or from it"
		switch p.STPState {
		case "listening", "learning":
			sev, why = SeverityWarning, fmt.Sprintf("spanning tree holds new ports for 2 x forward delay (STP=%t): DHCP in the guest may time out before the port forwards", br.STP)
		case "blocking":
			why = "spanning tree blocks it (a loop, or a BPDU from the guest)"
		case "disabled":
			why = fmt.Sprintf("the port has no carrier (tap admin_up=%t, oper_state=%s)", p.AdminUp, p.OperState)
		}
		d.addBridged(u.name, Finding{Code: CodeBridgePortBlocked, Severity: sev, Subject: subjectHost, Network: u.network, Domain: bn.domain, MAC: bn.nic.MAC,
			Summary: fmt.Sprintf("port %s of %s (guest %s, NIC %s) is in STP state %s: %s", p.Name, u.name, bn.domain, bn.nic.MAC, p.STPState, why),
			Fix: fmt.Sprintf("wait for forwarding or shorten it (ip link set dev %s type bridge forward_delay 200; STP off: stp_state 0 when the bridge has a single uplink); check with: bridge link show dev %s",
				u.name, p.Name),
			Evidence: append(base, ev("port", p.Name), ev("stp_state", p.STPState), ev("bridge_stp", br.STP), ev("domain", bn.domain))})
	}
}

// bridgedFlows reports the first blocked bridged flow of each bridge: br_netfilter hands bridged
// frames to the IP hooks and a forward-hook rule (usually Docker's FORWARD DROP) drops them.
func (d *diag) bridgedFlows(fw snapshot.Firewall) {
	seen := map[string]bool{}
	for _, f := range fw.Flows {
		if !f.Bridged || !blocked(f.Verdict) || seen[f.HostBridge] {
			continue
		}
		seen[f.HostBridge] = true
		var doms []string
		for _, g := range fw.Flows {
			if g.Bridged && g.HostBridge == f.HostBridge && blocked(g.Verdict) && !slices.Contains(doms, g.Domain) {
				doms = append(doms, g.Domain)
			}
		}
		sysctl := f.Sysctl
		if strings.HasSuffix(sysctl, "=unknown") {
			sysctl = snapshot.BridgeNFCallIPTables + " (not read; assumed 1)"
		}
		fix := fmt.Sprintf("kvmnetctl host fix --only bridge_netfilter_drop (inserts -i %s -o %s -m physdev --physdev-is-bridged -j ACCEPT into %s: only frames bridged on %s, the rest of the FORWARD policy stays); "+
			"or --bridge-nf-off (sets %s=0 now and in /etc/sysctl.d: no iptables/nft ip rule filters any bridged frame any more, Docker's bridge isolation included, and dockerd sets it back to 1 when it starts)",
			f.HostBridge, f.HostBridge, acceptChain(f, fw), f.HostBridge, snapshot.BridgeNFCallIPTables)
		if f.Backend == "nftables" {
			// An iptables accept cannot override another table's drop: the accept goes into the native
			// base chain itself, by hand (persist it in the file that defines the table).
			fix = fmt.Sprintf("nft insert rule %s iifname %q oifname %q accept (frames bridged on %s; persist it where that table is defined), "+
				"or turn bridge netfilter off: sysctl -w %s=0 and the same line in /etc/sysctl.d (no bridged frame is filtered any more; dockerd turns it back on)",
				nftBaseChain(f), f.HostBridge, f.HostBridge, f.HostBridge, snapshot.BridgeNFCallIPTables)
		}
		d.addBridged(f.HostBridge, Finding{
			Code: CodeBridgeNetfilterDrop, Severity: SeverityError, Subject: subjectHost, Network: f.Network, Domain: f.Domain, MAC: f.MAC,
			Summary: fmt.Sprintf("bridged frames of %s on host bridge %s pass the IP forward hook (%s) and %s in %s %ss them: %s (%s)",
				strings.Join(doms, ", "), f.HostBridge, sysctl, decidedBy(f, fw), f.Chain, f.Verdict, f.Rule, f.Description),
			Fix: fix,
			Evidence: append([]string{ev("bridge", f.HostBridge), ev("domains", doms), ev("sysctl", f.Sysctl), ev("physdev_in", f.PhysIn), ev("physdev_out", f.PhysOut),
				ev("backends", fw.Backends), ev("docker", fw.Docker)}, flowEvidence(f)...),
		})
	}
}

// acceptChain is where the bridged accept goes: Docker's DOCKER-USER when Docker's rules decided,
// else the FORWARD chain of the iptables world that decided.
func acceptChain(f snapshot.Flow, fw snapshot.Firewall) string {
	switch {
	case f.Backend == "nftables":
		return "the nftables base chain of " + f.Chain
	case fw.Docker:
		return f.Backend + " DOCKER-USER"
	}
	return f.Backend + " FORWARD"
}

// decidedBy names the backend whose rule decided, and says so explicitly when rules live in more
// than one world (iptables-nft next to iptables-legacy, or next to native nftables).
func decidedBy(f snapshot.Flow, fw snapshot.Firewall) string {
	if len(fw.Backends) > 1 {
		return fmt.Sprintf("%s (decided it; rules also in %s)", f.Backend, strings.Join(others(fw.Backends, f.Backend), ", "))
	}
	return f.Backend
}

func others(all []string, one string) []string {
	var out []string
	for _, a := range all {
		if a != one {
			out = append(out, a)
		}
	}
	return out
}

// bridgedUnfiltered: a bridge-mode network's frames never meet the IP hooks (bridge-nf-call-iptables
// is known to be 0, or br_netfilter is absent), so no FORWARD rule can drop them.
func (d *diag) bridgedUnfiltered(n *snapshot.Network) bool {
	b := d.s.Host.BridgeNF
	return n.Forward == snapshot.ForwardBridge && b.Known && !b.IPv4Filtered()
}

// bridgeNFState renders br_netfilter's state for summaries.
func (d *diag) bridgeNFState() string {
	b := d.s.Host.BridgeNF
	switch {
	case !b.Known:
		return snapshot.BridgeNFCallIPTables + " not read"
	case !b.Loaded:
		return "br_netfilter not loaded"
	case b.CallIPTables:
		return snapshot.BridgeNFCallIPTables + "=1"
	}
	return snapshot.BridgeNFCallIPTables + "=0"
}

// addBridged adds a host finding about a bridge guests are plugged into; an error marks every guest
// NIC on the bridge as affected (by its network, or by the bridge when no libvirt network owns it).
func (d *diag) addBridged(bridge string, f Finding) {
	d.addHost(f)
	if f.Severity == SeverityError && f.Network == "" {
		d.affectNet(bridgeKey(bridge), f.Code)
	}
}

// bridgeKey is the affects key of a host bridge no libvirt network owns (network names cannot
// contain "/").
func bridgeKey(name string) string { return "bridge/" + name }

// causeKey is the affects key of a guest NIC: its network, else its host bridge.
func (d *diag) causeKey(n *nicCtx) string {
	if n.netName != "" {
		return n.netName
	}
	if n.nic.Type == "bridge" && n.bridge != "" {
		return bridgeKey(n.bridge)
	}
	return ""
}

// nftBaseChain is "FAMILY TABLE CHAIN" of the last nftables base chain the flow's trace entered
// (where the deciding rule or policy sits, or the base chain that jumped to it).
func nftBaseChain(f snapshot.Flow) string {
	base := strings.TrimPrefix(f.Chain, "nftables ")
	for _, l := range f.Trace {
		if strings.HasPrefix(l, "nftables ") && strings.Contains(l, " (priority ") {
			base = strings.TrimPrefix(l[:strings.Index(l, " (priority ")], "nftables ")
		}
	}
	return base
}
