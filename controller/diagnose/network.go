package diagnose

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/kvmnet/kvmnet/controller/snapshot"
)

// requiredLibvirtChains are the iptables chains libvirt (>= 5.1) creates for its networks.
var requiredLibvirtChains = []string{"LIBVIRT_INP", "LIBVIRT_OUT", "LIBVIRT_FWI", "LIBVIRT_FWO", "LIBVIRT_FWX", "LIBVIRT_PRT"}

// diag holds the indexes one Diagnose run works with.
type diag struct {
	s        snapshot.Snapshot
	nets     map[string]*snapshot.Network
	bridges  map[string]*snapshot.Bridge
	guests   map[string]*snapshot.Guest
	users    map[string][]string // network name -> domains using it
	host     []Finding
	affects  map[string][]Code // network name -> error codes of host/network findings concerning it
	rulesBad bool              // libvirt_rules_missing fired
	// fwdZone lists the networks firewalld_zone_missing was reported for: their flows blocked in a
	// firewalld zone chain are that finding's consequence, not separate findings.
	fwdZone map[string]bool
}

func newDiag(s snapshot.Snapshot) *diag {
	d := &diag{
		s:       s,
		nets:    map[string]*snapshot.Network{},
		bridges: map[string]*snapshot.Bridge{},
		guests:  map[string]*snapshot.Guest{},
		users:   map[string][]string{},
		affects: map[string][]Code{},
	}
	for i := range s.Networks {
		d.nets[s.Networks[i].Name] = &s.Networks[i]
	}
	for i := range s.Host.Bridges {
		d.bridges[s.Host.Bridges[i].Name] = &s.Host.Bridges[i]
	}
	for i := range s.Guests {
		d.guests[s.Guests[i].Domain] = &s.Guests[i]
	}
	for _, dom := range s.Domains {
		for _, nic := range dom.NICs {
			name := s.Networks.NameOf(nic)
			if name != "" && !slices.Contains(d.users[name], dom.Name) {
				d.users[name] = append(d.users[name], dom.Name)
			}
		}
	}
	return d
}

// runningUsers are the running domains with a NIC on the network.
func (d *diag) runningUsers(name string) []string {
	var out []string
	for _, dom := range d.s.Domains {
		if dom.Running() && slices.Contains(d.users[name], dom.Name) {
			out = append(out, dom.Name)
		}
	}
	return out
}

// Network kind rules.

// servedByLibvirt: libvirt runs dnsmasq (DHCP/DNS) and owns the bridge.
func servedByLibvirt(n *snapshot.Network) bool {
	switch n.Forward {
	case snapshot.ForwardNAT, snapshot.ForwardRoute, snapshot.ForwardOpen, snapshot.ForwardIsolated:
		return true
	}
	return false
}

// routesOut: guests leave the host through the host's IP stack (needs ip_forward).
func routesOut(n *snapshot.Network) bool {
	switch n.Forward {
	case snapshot.ForwardNAT, snapshot.ForwardRoute, snapshot.ForwardOpen:
		return true
	}
	return false
}

// libvirtFirewalled: libvirt installs its own rules for the network.
func libvirtFirewalled(n *snapshot.Network) bool {
	switch n.Forward {
	case snapshot.ForwardNAT, snapshot.ForwardRoute, snapshot.ForwardIsolated:
		return true
	}
	return false
}

// expectsEgress: a guest on the network should reach beyond the host.
func expectsEgress(n *snapshot.Network) bool {
	return n == nil || n.Forward != snapshot.ForwardIsolated
}

func hasIPv6(n *snapshot.Network) bool {
	for _, ip := range n.IPs {
		if ip.Family == 6 {
			return true
		}
	}
	return false
}

func (d *diag) addHost(f Finding) {
	d.host = append(d.host, f)
	if f.Severity != SeverityError {
		return
	}
	if f.Network != "" {
		d.affectNet(f.Network, f.Code)
	}
}

func (d *diag) affectNet(name string, c Code) {
	if !slices.Contains(d.affects[name], c) {
		d.affects[name] = append(d.affects[name], c)
	}
}

func (d *diag) uplink() string {
	if d.s.Host.Uplink != "" {
		return d.s.Host.Uplink
	}
	return "<UPLINK>"
}

// hostFixRestart is the fix text of a code host fix answers by restarting the network; the caller
// closes the parenthesis.
func hostFixRestart(c Code, network string) string {
	return fmt.Sprintf("kvmnetctl host fix --only %s (runs: %s", c, restartNet(network))
}

func restartNet(name string) string {
	return fmt.Sprintf("virsh net-destroy %s && virsh net-start %s", name, name)
}

// hostAndNetworks runs every host- and network-level rule.
func (d *diag) hostAndNetworks() {
	d.missingNetworks()
	for i := range d.s.Networks {
		d.network(&d.s.Networks[i])
	}
	d.ipForward()
	d.hostBridges()
	d.firewall()
}

func (d *diag) missingNetworks() {
	var missing []string
	for name := range d.users {
		if _, ok := d.nets[name]; !ok {
			missing = append(missing, name)
		}
	}
	sort.Strings(missing)
	for _, name := range missing {
		fix := fmt.Sprintf("define it (virsh net-define %s.xml && virsh net-start %s && virsh net-autostart %s) or move the NICs to an existing network (virsh edit VM)", name, name, name)
		if name == "default" {
			fix = "kvmnetctl host fix --only network_missing (defines the stock NAT network: virbr0, 192.168.122.1/24, DHCP .2-.254)"
		}
		d.addHost(Finding{
			Code: CodeNetworkMissing, Severity: SeverityError, Subject: SubjectNetwork(name), Network: name,
			Summary: fmt.Sprintf("network %q is used by %s but is not defined: their NICs have nothing to attach to",
				name, strings.Join(d.users[name], ", ")),
			Fix:      fix,
			Evidence: []string{ev("network", name), ev("used_by", d.users[name]), ev("defined_networks", len(d.s.Networks))},
		})
	}
	// A host whose guests are all on host bridges has chosen not to use libvirt networks.
	if len(d.s.Networks) == 0 && len(missing) == 0 && !d.s.Session && len(d.bridgeUses()) == 0 {
		d.addHost(Finding{
			Code: CodeNetworkMissing, Severity: SeverityWarning, Subject: SubjectNetwork("default"), Network: "default",
			Summary:  "no libvirt network is defined (not even \"default\"): new guests get no NAT network",
			Fix:      "kvmnetctl host fix --only network_missing (defines the stock NAT network: virbr0, 192.168.122.1/24, DHCP .2-.254)",
			Evidence: []string{ev("network", "default"), ev("defined_networks", 0), ev("uri", d.s.URI)},
		})
	}
}

func (d *diag) network(n *snapshot.Network) {
	used := d.users[n.Name]
	base := []string{ev("network", n.Name), ev("forward", string(n.Forward)), ev("bridge", n.Bridge)}
	if !n.Active {
		sev := SeverityInfo
		why := "not used by any domain"
		running := d.runningUsers(n.Name)
		switch {
		case len(running) > 0:
			sev, why = SeverityError, "its running guests ("+strings.Join(running, ", ")+") get no link, no DHCP and no DNS"
		case len(used) > 0:
			sev, why = SeverityWarning, "its guests ("+strings.Join(used, ", ")+") cannot start"
		case n.Name == "default":
			sev, why = SeverityWarning, "new guests on it will get no IP address"
		}
		d.addHost(Finding{
			Code: CodeNetworkInactive, Severity: sev, Subject: SubjectNetwork(n.Name), Network: n.Name,
			Summary:  fmt.Sprintf("network %q is defined but not started (autostart=%s): %s", n.Name, yesNo(n.Autostart), why),
			Fix:      fmt.Sprintf("kvmnetctl host fix --only network_inactive (runs: virsh net-start %s)", n.Name),
			Evidence: append(base, ev("active", false), ev("autostart", n.Autostart), ev("used_by", used)),
		})
	}
	if n.Persistent && !n.Autostart && (len(used) > 0 || n.Name == "default") {
		d.addHost(Finding{
			Code: CodeNetworkAutostartOff, Severity: SeverityWarning, Subject: SubjectNetwork(n.Name), Network: n.Name,
			Summary:  fmt.Sprintf("network %q does not start with libvirtd (autostart=no): after a reboot its guests have no network", n.Name),
			Fix:      fmt.Sprintf("kvmnetctl host fix --only network_autostart_off (runs: virsh net-autostart %s)", n.Name),
			Evidence: append(base, ev("autostart", false), ev("used_by", used)),
		})
	}
	if !n.Active {
		return
	}
	if servedByLibvirt(n) && n.Subnet() != "" && !n.HasDHCP() {
		start, end := suggestRange(n)
		d.addHost(Finding{
			Code: CodeNetworkDHCPMissing, Severity: SeverityWarning, Subject: SubjectNetwork(n.Name), Network: n.Name,
			Summary: fmt.Sprintf("network %q (%s, %s) hands out no addresses: no <dhcp> range or host, guests need static addresses",
				n.Name, n.Forward, n.Subnet()),
			Fix: fmt.Sprintf("virsh net-edit %s: inside <ip address='%s'> add <dhcp><range start='%s' end='%s'/></dhcp>, then %s",
				n.Name, n.BridgeIPv4(), start, end, restartNet(n.Name)),
			Evidence: append(base, ev("subnet", n.Subnet()), ev("dhcp_ranges", 0), ev("dhcp_hosts", 0)),
		})
	}
	d.bridge(n, base)
	d.dnsmasq(n, base)
}

func (d *diag) bridge(n *snapshot.Network, base []string) {
	if !d.s.Host.Read || n.Bridge == "" {
		return
	}
	br, ok := d.bridges[n.Bridge]
	var summary, fix string
	var evd []string
	switch {
	case !ok:
		summary = fmt.Sprintf("bridge %s of active network %q does not exist on the host", n.Bridge, n.Name)
		evd = []string{ev("bridge_present", false)}
		if n.Forward == snapshot.ForwardBridge {
			fix = fmt.Sprintf("create the host bridge %s and enslave the uplink (e.g. nmcli connection add type bridge ifname %s con-name %s; nmcli connection add type bridge-slave ifname %s master %s)",
				n.Bridge, n.Bridge, n.Bridge, d.uplink(), n.Bridge)
		} else {
			fix = hostFixRestart(CodeBridgeDown, n.Name) + "; libvirt re-creates the bridge, kvmnet re-attaches the running guests' taps)"
		}
	case !br.AdminUp:
		summary = fmt.Sprintf("bridge %s of network %q is administratively down (oper_state=%s)", n.Bridge, n.Name, br.OperState)
		evd = []string{ev("bridge_present", true), ev("admin_up", false), ev("oper_state", br.OperState)}
		fix = fmt.Sprintf("ip link set dev %s up", n.Bridge)
	default:
		return
	}
	d.addHost(Finding{
		Code: CodeBridgeDown, Severity: SeverityError, Subject: SubjectNetwork(n.Name), Network: n.Name,
		Summary: summary, Fix: fix, Evidence: append(base, evd...),
	})
}

func (d *diag) dnsmasq(n *snapshot.Network, base []string) {
	if !servedByLibvirt(n) || n.Subnet() == "" || (!n.HasDHCP() && !n.DNSEnabled) {
		return
	}
	st, ok := d.s.Host.Dnsmasq[n.Name]
	if !ok || !st.Checked {
		return
	}
	var summary string
	switch {
	case !st.Running:
		summary = fmt.Sprintf("libvirt's dnsmasq for network %q is not running: guests get no DHCP lease and no DNS", n.Name)
	case n.DNSEnabled && !st.AnswersDNS:
		summary = fmt.Sprintf("libvirt's dnsmasq for network %q (pid %d) does not answer DNS on %s:53", n.Name, st.PID, n.BridgeIPv4())
	default:
		return
	}
	evd := append(base, ev("running", st.Running), ev("pid", st.PID), ev("answers_dns", st.AnswersDNS))
	if st.Evidence != "" {
		evd = append(evd, strings.Fields(st.Evidence)...)
	}
	d.addHost(Finding{
		Code: CodeDnsmasqDown, Severity: SeverityError, Subject: SubjectNetwork(n.Name), Network: n.Name,
		Summary:  summary,
		Fix:      hostFixRestart(CodeDnsmasqDown, n.Name) + ": libvirt restarts its dnsmasq; guests keep their leases)",
		Evidence: evd,
	})
}

func (d *diag) activeNets(pred func(*snapshot.Network) bool) []*snapshot.Network {
	var out []*snapshot.Network
	for i := range d.s.Networks {
		n := &d.s.Networks[i]
		if n.Active && pred(n) {
			out = append(out, n)
		}
	}
	return out
}

func names(ns []*snapshot.Network) []string {
	out := make([]string, 0, len(ns))
	for _, n := range ns {
		out = append(out, n.Name)
	}
	return out
}

func (d *diag) ipForward() {
	h := d.s.Host
	if !h.IPForwardKnown || h.IPForward {
		return
	}
	nets := d.activeNets(routesOut)
	if len(nets) == 0 {
		return
	}
	d.addHost(Finding{
		Code: CodeIPForwardOff, Severity: SeverityError, Subject: subjectHost,
		Summary: fmt.Sprintf("net.ipv4.ip_forward=0: guests of %s cannot leave the host (the kernel does not route their packets)",
			strings.Join(names(nets), ", ")),
		Fix:      "kvmnetctl host fix --only ip_forward_off (sysctl -w net.ipv4.ip_forward=1, persisted in /etc/sysctl.d/)",
		Evidence: []string{ev("net.ipv4.ip_forward", 0), ev("networks", names(nets))},
	})
	for _, n := range nets {
		d.affectNet(n.Name, CodeIPForwardOff)
	}
}

func (d *diag) firewall() {
	fw := d.s.Firewall
	concerned := d.activeNets(func(n *snapshot.Network) bool { return servedByLibvirt(n) || n.Forward == snapshot.ForwardBridge })
	if len(concerned) == 0 && len(d.bridgeUses()) == 0 {
		return
	}
	if !fw.Read {
		d.addHost(Finding{
			Code: CodeFirewallUnreadable, Severity: SeverityInfo, Subject: subjectHost,
			Summary:  "the host firewall could not be read, so firewall causes are not judged: " + orNone(fw.Error),
			Fix:      "run kvmnetctl as root on the libvirt host itself (iptables-save and nft need CAP_NET_ADMIN)",
			Evidence: []string{ev("read", false), ev("error", fw.Error)},
		})
		return
	}
	d.libvirtRules(fw)
	d.masquerade(fw)
	d.firewalld(fw)
	for _, n := range concerned {
		d.flows(n, fw)
	}
	d.bridgedFlows(fw)
}

func (d *diag) libvirtRules(fw snapshot.Firewall) {
	nets := d.activeNets(libvirtFirewalled)
	if len(nets) == 0 || fw.LibvirtNFTable {
		return
	}
	var missing []string
	for _, c := range requiredLibvirtChains {
		if !slices.Contains(fw.LibvirtChains, c) {
			missing = append(missing, c)
		}
	}
	// Chains that exist but nothing jumps to are as good as gone (after `iptables -F`).
	for _, u := range fw.LibvirtUnhooked {
		if _, c, _ := strings.Cut(u, "/"); !slices.Contains(missing, c) {
			missing = append(missing, c)
		}
	}
	if len(missing) == 0 {
		return
	}
	sev := SeverityWarning // isolated networks only: isolation and DHCP input are no longer enforced/allowed
	var hit []string
	for _, n := range nets {
		if n.Forward != snapshot.ForwardIsolated {
			sev = SeverityError
		}
		hit = append(hit, n.Name)
	}
	d.rulesBad = true
	d.addHost(Finding{
		Code: CodeLibvirtRulesMissing, Severity: sev, Subject: subjectHost,
		Summary: fmt.Sprintf("libvirt's firewall rules are gone (missing or unhooked chains %s, no libvirt_network nft table; backend %s): the firewall was reloaded or flushed after libvirt set up %s",
			strings.Join(missing, ","), orNone(fw.Backend), strings.Join(hit, ", ")),
		Fix: fmt.Sprintf("kvmnetctl host fix --only libvirt_rules_missing (restarts %s so libvirt re-creates its rules; running guests' DHCP may blip)",
			strings.Join(hit, ", ")),
		Evidence: []string{ev("missing_chains", missing), ev("libvirt_chains", fw.LibvirtChains), ev("libvirt_unhooked", fw.LibvirtUnhooked), ev("libvirt_nftable", false),
			ev("backend", fw.Backend), ev("networks", hit)},
	})
	if sev == SeverityError {
		for _, n := range nets {
			if n.Forward != snapshot.ForwardIsolated {
				d.affectNet(n.Name, CodeLibvirtRulesMissing)
			}
		}
	}
}

// covers reports whether one of the masquerade source specs covers subnet.
func covers(specs []string, subnet string) (string, bool) {
	sub, err := netip.ParsePrefix(subnet)
	if err != nil {
		return "", false
	}
	for _, s := range specs {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			if a, err2 := netip.ParseAddr(s); err2 == nil {
				p = netip.PrefixFrom(a, a.BitLen())
			} else {
				continue
			}
		}
		if p.Bits() <= sub.Bits() && p.Contains(sub.Masked().Addr()) {
			return s, true
		}
	}
	return "", false
}

func (d *diag) masquerade(fw snapshot.Firewall) {
	if d.rulesBad {
		return // the root cause is already named; restarting the network restores both
	}
	for _, n := range d.activeNets(func(n *snapshot.Network) bool { return n.Forward == snapshot.ForwardNAT }) {
		sub := n.Subnet()
		if sub == "" {
			continue
		}
		natRule, evaluated := "", false
		for _, f := range fw.Flows {
			if f.Network == n.Name && f.Kind == "egress" && f.NATRule != "" {
				natRule, evaluated = f.NATRule, true
				if f.NAT != "" {
					natRule = "" // translated
				}
				break
			}
		}
		if evaluated && natRule == "" {
			continue
		}
		if _, ok := covers(fw.Masquerade, sub); ok && !evaluated {
			continue
		}
		d.addHost(Finding{
			Code: CodeNATMasqueradeMissing, Severity: SeverityError, Subject: SubjectNetwork(n.Name), Network: n.Name,
			Summary: fmt.Sprintf("no MASQUERADE/SNAT rule covers NAT network %q (%s): its packets leave with private source addresses and replies never come back",
				n.Name, sub),
			Fix: hostFixRestart(CodeNATMasqueradeMissing, n.Name) + ": libvirt re-creates its MASQUERADE rules in LIBVIRT_PRT; running guests' DHCP may blip)",
			Evidence: []string{ev("network", n.Name), ev("subnet", sub), ev("masquerade_sources", fw.Masquerade), ev("backend", fw.Backend),
				ev("evaluated", evaluated), ev("nat_rule", natRule)},
		})
	}
}

func flowEvidence(f snapshot.Flow) []string {
	out := []string{ev("flow", f.Description), ev("verdict", string(f.Verdict)), ev("chain", f.Chain), ev("rule", f.Rule)}
	if f.Backend != "" {
		out = append(out, ev("backend", f.Backend))
	}
	if len(f.Uncertain) > 0 {
		out = append(out, ev("uncertain", strings.Join(f.Uncertain, " | ")))
	}
	if len(f.Trace) > 0 {
		out = append(out, ev("trace", strings.Join(f.Trace, " > ")))
	}
	return out
}

func blocked(v snapshot.Verdict) bool {
	return v == snapshot.VerdictDrop || v == snapshot.VerdictReject
}

func isUFW(f snapshot.Flow) bool {
	return strings.HasPrefix(strings.ToLower(f.Chain), "ufw") || strings.Contains(strings.ToLower(f.Rule), "ufw")
}

func isPolicy(f snapshot.Flow) bool {
	return strings.Contains(strings.ToLower(f.Rule), "policy") || strings.HasPrefix(f.Chain, "DOCKER")
}

// egressFlow returns the evaluated egress flow of a network.
func (d *diag) egressFlow(name string) (snapshot.Flow, bool) {
	for _, f := range d.s.Firewall.Flows {
		if f.Network == name && f.Kind == "egress" {
			return f, true
		}
	}
	return snapshot.Flow{}, false
}

func (d *diag) flows(n *snapshot.Network, fw snapshot.Firewall) {
	base := []string{ev("network", n.Name), ev("bridge", n.Bridge), ev("subnet", n.Subnet()), ev("uplink", d.s.Host.Uplink)}
	// One finding per network and kind of path, from the first flow that is blocked (the evaluator
	// probes several ports and protocols for each).
	var input, egress *snapshot.Flow
	for i := range fw.Flows {
		f := &fw.Flows[i]
		if f.Network != n.Name || !blocked(f.Verdict) || f.Bridged {
			continue // bridged flows: bridgedFlows
		}
		switch f.Kind {
		case "dhcp", "dns":
			if input == nil {
				input = f
			}
		case "egress", "return":
			if egress == nil {
				egress = f
			}
		}
	}
	if input != nil && d.fwdZone[n.Name] && input.FirewalldZone != "" {
		input = nil // firewalld_zone_missing names it
	}
	if egress != nil && d.fwdZone[n.Name] && egress.FirewalldZone != "" {
		egress = nil
	}
	if input != nil {
		f := *input
		fix := fmt.Sprintf("allow guests' DHCP (udp 67) and DNS (udp/tcp 53) in on %s before %s's rule", n.Bridge, f.Chain)
		if isUFW(f) || (isPolicy(f) && fw.UFW.Enabled) {
			fix = fmt.Sprintf("ufw allow in on %s", n.Bridge)
		}
		d.addHost(Finding{
			Code: CodeHostDHCPDNSBlocked, Severity: SeverityError, Subject: SubjectNetwork(n.Name), Network: n.Name,
			Summary: fmt.Sprintf("the host firewall %ss guests' %s on %s: %s (chain %s)", f.Verdict, strings.ToUpper(f.Kind), n.Bridge, f.Rule, f.Chain),
			Fix:     fix, Evidence: append(append([]string{}, base...), flowEvidence(f)...),
		})
	}
	if egress != nil && expectsEgress(n) { // an isolated network is meant to have no way out
		d.egressBlocked(n, *egress, fw, base)
	}
	if _, ok := d.egressFlow(n.Name); !ok && expectsEgress(n) {
		d.staticFirewall(n, fw, base)
	}
}

func (d *diag) egressBlocked(n *snapshot.Network, f snapshot.Flow, fw snapshot.Firewall, base []string) {
	evd := append(append([]string{}, base...), flowEvidence(f)...)
	fd := Finding{Severity: SeverityError, Subject: SubjectNetwork(n.Name), Network: n.Name, Evidence: evd}
	switch {
	case f.FirewalldPolicy != "":
		d.firewalldPolicyReject(n, f, fw, &fd)
	case isUFW(f) || (isPolicy(f) && (strings.Contains(fw.ForwardPolicySetBy, "ufw") ||
		(fw.UFW.Enabled && (fw.UFW.DefaultRouted == "deny" || fw.UFW.DefaultRouted == "reject")))):
		// UFW's routed default sets the FORWARD policy itself; its "route allow" rules come before it.
		fd.Code = CodeUFWRoutedBlocked
		fd.Summary = fmt.Sprintf("UFW %ss new guest traffic from %s (%s) to %s: %s (chain %s; default routed policy %s) — ping to the host works, apt/HTTP fails",
			f.Verdict, n.Bridge, n.Subnet(), d.uplink(), f.Rule, f.Chain, orNone(fw.UFW.DefaultRouted))
		fd.Fix = fmt.Sprintf("kvmnetctl host fix --only ufw_routed_blocked (runs: ufw route allow in on %s out on %s)", n.Bridge, d.uplink())
	case isPolicy(f):
		fd.Code = CodeForwardPolicyDrop
		who := "someone"
		switch {
		case fw.ForwardPolicySetBy != "" && fw.ForwardPolicySetBy != "unknown":
			who = fw.ForwardPolicySetBy
		case fw.Docker:
			who = "docker"
		}
		fd.Summary = fmt.Sprintf("the FORWARD chain's policy %s (set by %s) %ss guest traffic from %s (%s): %s",
			orNone(fw.ForwardPolicy), who, f.Verdict, n.Bridge, n.Subnet(), f.Rule)
		fd.Evidence = append(fd.Evidence, ev("docker", fw.Docker), ev("forward_policy", fw.ForwardPolicy), ev("set_by", fw.ForwardPolicySetBy))
		fd.Fix = d.forwardFix(n, fw.Docker)
	case d.forwardDevMismatch(n, f):
		fd.Code = CodeNetworkForwardDevMismatch
		why := "the default route leaves by " + d.s.Host.Uplink
		if br, ok := d.bridges[d.s.Host.Uplink]; ok && slices.Contains(br.Ports, n.ForwardDev) {
			why = fmt.Sprintf("%s is now a port of bridge %s, which holds the default route", n.ForwardDev, d.s.Host.Uplink)
		}
		fd.Summary = fmt.Sprintf("network %q (%s) forwards only by <forward dev='%s'>, but %s: libvirt's own rule %ss guest traffic from %s (%s): %s (chain %s)",
			n.Name, n.Forward, n.ForwardDev, why, f.Verdict, n.Bridge, n.Subnet(), f.Rule, f.Chain)
		fd.Fix = fmt.Sprintf("virsh net-edit %s: <forward mode='%s' dev='%s'/> (or no dev), then %s (libvirt rewrites its rules; running guests' taps must be re-attached)",
			n.Name, n.Forward, d.s.Host.Uplink, restartNet(n.Name))
		fd.Evidence = append(fd.Evidence, ev("forward_dev", n.ForwardDev), ev("forward", string(n.Forward)))
	default:
		fd.Code = CodeFirewallEgressBlocked
		fd.Summary = fmt.Sprintf("the host firewall %ss new guest traffic from %s (%s) to %s: %s (chain %s)",
			f.Verdict, n.Bridge, n.Subnet(), d.uplink(), f.Rule, f.Chain)
		if strings.HasPrefix(f.Chain, "LIBVIRT_") {
			fd.Fix = restartNet(n.Name) + " (libvirt rewrites its rules for the network's current subnet)"
		} else {
			fd.Fix = fmt.Sprintf("remove that rule or insert an ACCEPT for %s before it in %s (persist with the tool that owns the rule)", orNone(n.Subnet()), f.Chain)
		}
	}
	if len(fw.Backends) > 1 && f.Backend != "" {
		fd.Summary += "; decided by " + decidedBy(f, fw)
	}
	d.addHost(fd)
}

func (d *diag) forwardFix(n *snapshot.Network, docker bool) string {
	sub := n.Subnet()
	if sub == "" {
		sub = "<SUBNET>"
	}
	if docker {
		return fmt.Sprintf("kvmnetctl host fix --only forward_policy_drop (adds to DOCKER-USER: -s %s -j ACCEPT and -d %s -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT; Docker's policy stays)", sub, sub)
	}
	return fmt.Sprintf("iptables -I FORWARD -i %s -s %s -j ACCEPT; iptables -I FORWARD -o %s -d %s -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT (persist with the tool that set the DROP policy)",
		n.Bridge, sub, n.Bridge, sub)
}

// staticFirewall judges from the parsed state alone when no flow was evaluated for the network.
func (d *diag) staticFirewall(n *snapshot.Network, fw snapshot.Firewall, base []string) {
	evd := append(append([]string{}, base...), ev("evaluated", false))
	if fw.UFW.Enabled && (fw.UFW.DefaultRouted == "deny" || fw.UFW.DefaultRouted == "reject") && !ufwRouteAllowed(fw.UFW.RouteAllows, n.Bridge) &&
		libvirtMayNotAccept(n, fw) {
		d.addHost(Finding{
			Code: CodeUFWRoutedBlocked, Severity: SeverityWarning, Subject: SubjectNetwork(n.Name), Network: n.Name,
			Summary: fmt.Sprintf("UFW's default routed policy is %s and no \"route allow in on %s\" rule exists: guest traffic to %s is likely dropped (flow not evaluated)",
				fw.UFW.DefaultRouted, n.Bridge, d.uplink()),
			Fix:      fmt.Sprintf("kvmnetctl host fix --only ufw_routed_blocked (runs: ufw route allow in on %s out on %s)", n.Bridge, d.uplink()),
			Evidence: append(evd, ev("ufw_default_routed", fw.UFW.DefaultRouted), ev("route_allows", fw.UFW.RouteAllows)),
		})
	}
	if fw.ForwardPolicy == "DROP" && !fw.UFW.Enabled && libvirtMayNotAccept(n, fw) && !d.bridgedUnfiltered(n) {
		why := "bridged guest frames pass the FORWARD chain when br_netfilter is loaded (" + d.bridgeNFState() + ")"
		if n.Forward != snapshot.ForwardBridge {
			why = "libvirt's own rules do not override another table's DROP"
		}
		d.addHost(Finding{
			Code: CodeForwardPolicyDrop, Severity: SeverityWarning, Subject: SubjectNetwork(n.Name), Network: n.Name,
			Summary:  fmt.Sprintf("the FORWARD policy is DROP (docker=%s): %s, so guest traffic of %q is likely dropped (flow not evaluated)", yesNo(fw.Docker), why, n.Name),
			Fix:      d.forwardFix(n, fw.Docker),
			Evidence: append(evd, ev("forward_policy", fw.ForwardPolicy), ev("docker", fw.Docker)),
		})
	}
}

// libvirtMayNotAccept: without an evaluated flow, libvirt's own iptables ACCEPT rules (inserted at the
// top of FORWARD) are assumed to win; they do not exist for bridged and open networks, and libvirt's
// native nftables table cannot override a DROP in another table.
func libvirtMayNotAccept(n *snapshot.Network, fw snapshot.Firewall) bool {
	return n.Forward == snapshot.ForwardBridge || n.Forward == snapshot.ForwardOpen || fw.LibvirtNFTable || len(fw.LibvirtChains) == 0
}

func ufwRouteAllowed(allows []string, bridge string) bool {
	for _, a := range allows {
		if strings.Contains(a, "in on "+bridge) {
			return true
		}
	}
	return false
}

// suggestRange proposes a DHCP range for a network without one: .2 to the last host of the subnet
// (as the stock default network does).
func suggestRange(n *snapshot.Network) (string, string) {
	p, err := netip.ParsePrefix(n.Subnet())
	if err != nil || !p.Addr().Is4() || p.Bits() > 29 {
		return "<START>", "<END>"
	}
	b := p.Masked().Addr().As4()
	start := b
	start[3] += 2
	host := uint32(1)<<(32-p.Bits()) - 2 // last usable offset
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += host
	end := [4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
	return netip.AddrFrom4(start).String(), netip.AddrFrom4(end).String()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// hostReport builds the "host" object.
func (d *diag) hostReport() HostReport {
	h := d.s.Host
	fw := d.s.Firewall
	hr := HostReport{Findings: d.host, Uplink: h.Uplink, IPv6DefaultRoute: h.IPv6DefaultRoute}
	if hr.Findings == nil {
		hr.Findings = []Finding{}
	}
	hr.Bridges = []BridgeReport{}
	for _, b := range h.Bridges {
		st := bridgeState(b)
		hr.Bridges = append(hr.Bridges, BridgeReport{Name: b.Name, State: st, Addresses: nonNil(b.Addresses), Ports: nonNil(b.Ports), STP: b.STP})
	}
	if h.IPForwardKnown {
		v := h.IPForward
		hr.IPForward = &v
	}
	if h.Read {
		hr.BridgeNF = d.bridgeNFState()
	}
	hr.Firewall = FirewallReport{Read: fw.Read, Backend: fw.Backend, ForwardPolicy: fw.ForwardPolicy, Docker: fw.Docker}
	if fw.Read {
		switch {
		case fw.LibvirtNFTable:
			hr.Firewall.LibvirtRules = "nftables"
		case len(fw.LibvirtChains) > 0:
			hr.Firewall.LibvirtRules = "iptables"
		default:
			hr.Firewall.LibvirtRules = "missing"
		}
		hr.Firewall.UFW = "inactive"
		if fw.UFW.Enabled {
			hr.Firewall.UFW = "active (routed: " + orNone(fw.UFW.DefaultRouted) + ")"
		}
		hr.Firewall.Firewalld = "not running"
		if fw.Firewalld.Running {
			hr.Firewall.Firewalld = "running (no libvirt zone)"
			if fw.Firewalld.LibvirtZone {
				hr.Firewall.Firewalld = "running (libvirt zone)"
			}
		}
	}
	return hr
}

// networkReports builds the "networks" array.
func (d *diag) networkReports() []NetworkReport {
	out := make([]NetworkReport, 0, len(d.s.Networks))
	for i := range d.s.Networks {
		n := &d.s.Networks[i]
		nr := NetworkReport{
			Name: n.Name, Active: n.Active, Autostart: n.Autostart, Forward: string(n.Forward), Bridge: n.Bridge,
			Subnet: n.Subnet(), Persistent: n.Persistent, DHCP: servedByLibvirt(n) && n.HasDHCP(),
			BridgeState: "unknown", Dnsmasq: "unknown", Masquerade: "unknown", Egress: "unknown", Leases: -1,
		}
		if n.LeasesSupported {
			nr.Leases = 0
			for _, l := range n.Leases {
				if l.Family == 4 {
					nr.Leases++
				}
			}
		}
		if d.s.Host.Read && n.Bridge != "" {
			nr.BridgeState = "missing"
			if br, ok := d.bridges[n.Bridge]; ok {
				nr.BridgeState = bridgeState(*br)
			}
		}
		if !servedByLibvirt(n) {
			nr.Dnsmasq = "n/a"
		} else if st, ok := d.s.Host.Dnsmasq[n.Name]; ok && st.Checked {
			switch {
			case !st.Running:
				nr.Dnsmasq = "down"
			case st.AnswersDNS:
				nr.Dnsmasq = "answering"
			default:
				nr.Dnsmasq = "running"
			}
		}
		if n.Forward != snapshot.ForwardNAT {
			nr.Masquerade = "n/a"
		} else if d.s.Firewall.Read {
			nr.Masquerade = "no"
			if _, ok := covers(d.s.Firewall.Masquerade, n.Subnet()); ok {
				nr.Masquerade = "yes"
			}
		}
		if !expectsEgress(n) {
			nr.Egress = "n/a"
		} else if f, ok := d.egressFlow(n.Name); ok {
			nr.Egress, nr.EgressRule, nr.EgressBackend = string(f.Verdict), f.Rule, f.Backend
		}
		nr.ReturnRoute = d.returnRoute(n)
		nr.Healthy = len(d.affects[n.Name]) == 0
		out = append(out, nr)
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// bridgeState is the oper state, "down" when administratively down, and "no-carrier" for a bridge
// that is up without ports (normal while no guest runs on it).
func bridgeState(b snapshot.Bridge) string {
	switch {
	case !b.AdminUp:
		return "down"
	case b.OperState == "down" && len(b.Ports) == 0:
		return "no-carrier"
	}
	return b.OperState
}
