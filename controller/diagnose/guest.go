package diagnose

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/kvmnet/kvmnet/controller/snapshot"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// nicCtx is one domain NIC with everything the host and the guest know about it.
type nicCtx struct {
	nic     snapshot.DomainNIC
	net     *snapshot.Network // nil: no libvirt network (host bridge, direct, user) or network missing
	netName string
	bridge  string
	br      *snapshot.Bridge
	lease   *snapshot.Lease
	neigh   []string // IPv4 neighbour entries for the MAC on the bridge
	iface   *kvmnetv1.Interface
	row     *NICReport
}

// guestCtx is one domain during diagnosis.
type guestCtx struct {
	d     *diag
	dom   snapshot.Domain
	g     snapshot.Guest // zero value when the collector has no entry
	st    *kvmnetv1.GuestState
	nics  []*nicCtx
	out   []Finding
	rep   GuestReport
	check checkSet
	// viaQGA: st was built from qemu-guest-agent's view (interfaces only), not the kvmnet agent's.
	viaQGA bool
}

func (gc *guestCtx) add(f Finding) {
	f.Domain = gc.dom.Name
	gc.out = append(gc.out, f)
}

func (gc *guestCtx) addNIC(n *nicCtx, f Finding) {
	f.MAC = n.nic.MAC
	f.Subject = SubjectGuest(gc.dom.Name, n.nic.MAC)
	if f.Network == "" {
		f.Network = n.netName
	}
	f.Evidence = append([]string{ev("mac", n.nic.MAC), ev("network", orNone(n.netName)), ev("bridge", orNone(n.bridge))}, f.Evidence...)
	gc.add(f)
}

func (gc *guestCtx) fixGuest(n *nicCtx) string {
	fix := "kvmnetctl guests fix " + gc.dom.Name
	if n != nil {
		fix = fmt.Sprintf("kvmnetctl guests fix %s --nic %s", gc.dom.Name, n.nic.MAC)
	}
	if gc.viaQGA {
		return InstallAgentCommand(gc.dom.Name) + ", then " + fix
	}
	return fix
}

// guest diagnoses one domain.
func (d *diag) guest(dom snapshot.Domain) GuestReport {
	gc := &guestCtx{d: d, dom: dom}
	if g, ok := d.guests[dom.Name]; ok {
		gc.g = *g
	}
	if gc.g.Reachable {
		gc.st = gc.g.State
	}
	gc.fromQGA()
	gc.rep = GuestReport{Name: dom.Name, State: dom.State, Agent: gc.agentReport(), NICs: []NICReport{}}
	if gc.st != nil {
		gc.rep.Hostname = gc.st.GetHostname()
		gc.rep.OS = gc.st.GetOs().GetPrettyName()
	}
	gc.check = classifyChecks(gc.g.Checks, d.s.Networks)
	gc.rep.Checks = checkReports(gc.g.Checks)
	gc.correlate()

	gc.channelExposed()
	gc.agentPresence()
	if dom.Running() {
		for _, n := range gc.nics {
			gc.nicRules(n)
		}
		if gc.st != nil && !gc.viaQGA {
			gc.profiles()
			gc.defaultRoute()
			gc.resolver()
			gc.checkRules()
			gc.ipv6()
		}
		gc.qemuGA()
	}
	gc.nameTakenFixes()

	gc.rep.Findings = gc.out
	if gc.rep.Findings == nil {
		gc.rep.Findings = []Finding{}
	}
	for _, n := range gc.nics {
		gc.rep.NICs = append(gc.rep.NICs, *n.row)
		if key := d.causeKey(n); key != "" {
			for _, c := range d.affects[key] {
				if !slices.Contains(gc.rep.HostCauses, c) {
					gc.rep.HostCauses = append(gc.rep.HostCauses, c)
				}
			}
		}
	}
	gc.rep.Healthy = !HasErrors(gc.out) && len(gc.rep.HostCauses) == 0
	gc.rep.Health = HealthHealthy
	switch {
	case !gc.rep.Healthy:
		gc.rep.Health = HealthUnhealthy
	case gc.dom.Running() && !gc.g.Reachable && (gc.g.QGA == nil || !gc.g.QGA.Answered):
		// Nothing from inside the guest: no error found is not the same as healthy.
		gc.rep.Health = HealthUnknown
	}
	return gc.rep
}

func (gc *guestCtx) transport() snapshot.AgentTransport {
	if gc.g.Transport != "" {
		return gc.g.Transport
	}
	switch {
	case gc.dom.VsockCID > 0:
		return snapshot.TransportVsock
	default:
		if _, ok := gc.dom.Channel(snapshot.ChannelKvmnet); ok {
			return snapshot.TransportVirtioSerial
		}
	}
	return snapshot.TransportNone
}

func (gc *guestCtx) agentReport() AgentReport {
	a := AgentReport{Transport: string(gc.transport()), Reachable: gc.g.Reachable, Address: gc.g.Address, Error: gc.g.Error,
		QGA: qgaReport(gc.g.QGA)}
	if gc.st != nil {
		a.Version = gc.st.GetAgentVersion()
		if cfg := gc.st.GetConfig(); cfg != nil {
			v := cfg.GetAllowApply()
			a.AllowApply = &v
		}
	}
	if gc.g.Latency > 0 {
		a.LatencyMS = float64(gc.g.Latency.Microseconds()) / 1000
	}
	return a
}

// correlate builds one row per domain NIC, matching the guest interface by MAC.
func (gc *guestCtx) correlate() {
	d := gc.d
	for _, nic := range gc.dom.NICs {
		n := &nicCtx{nic: nic, bridge: nic.Bridge, netName: d.s.Networks.NameOf(nic)}
		if n.netName != "" {
			n.net = d.nets[n.netName]
		}
		if n.net != nil && n.bridge == "" {
			n.bridge = n.net.Bridge
		}
		if n.bridge != "" {
			n.br = d.bridges[n.bridge]
		}
		if n.net != nil && n.net.LeasesSupported {
			for i := range n.net.Leases {
				l := &n.net.Leases[i]
				if l.Family == 4 && l.MAC == nic.MAC && (n.lease == nil || l.Expiry.After(n.lease.Expiry)) {
					n.lease = l
				}
			}
		}
		if n.br != nil {
			for _, nb := range n.br.Neighbors {
				if nb.MAC == nic.MAC && isV4(nb.IP) && nb.State != "failed" && nb.State != "incomplete" {
					n.neigh = append(n.neigh, nb.IP)
				}
			}
		}
		n.iface = snapshot.GuestInterface(gc.st, nic.MAC)
		n.row = gc.row(n)
		gc.nics = append(gc.nics, n)
	}
}

func isV4(ip string) bool {
	a, err := netip.ParseAddr(ip)
	return err == nil && a.Is4()
}

func (gc *guestCtx) row(n *nicCtx) *NICReport {
	r := &NICReport{
		MAC: n.nic.MAC, Network: n.netName, Bridge: n.bridge, Type: n.nic.Type, Vnet: n.nic.Target, Backend: n.nic.Backend,
		LinkState: n.nic.LinkState, GuestIPv4: []string{}, NeighborIPv4: n.neigh, IPv6: "unknown", AptIPv4: "unknown", Checks: "-",
	}
	if r.LinkState == "" {
		r.LinkState = "up"
	}
	if n.nic.Type == "network" && n.netName == "" {
		r.Network = n.nic.Network
	}
	if n.net != nil {
		r.Forward = string(n.net.Forward)
	}
	switch {
	case n.lease != nil:
		r.LeaseIPv4, r.LeaseSource = n.lease.IP, "libvirt"
	case (n.net == nil || !servedByLibvirt(n.net)) && len(n.neigh) > 0:
		r.LeaseIPv4, r.LeaseSource = n.neigh[0], "neighbour"
	}
	if n.iface != nil {
		r.GuestIfname = n.iface.GetName()
		r.GuestOperState = n.iface.GetOperState()
		r.Stack = stackName(n.iface)
		r.GuestIPv4 = append(r.GuestIPv4, n.iface.GetIpv4()...)
		r.IPv6 = gc.ipv6State(n.iface)
	}
	if gc.st != nil {
		r.AptIPv4 = aptState(gc.st.GetPackageManager())
		if n.iface != nil && (n.iface.GetDefaultRouteV4() || snapshot.DefaultIfaceV4(gc.st) == n.iface.GetName()) {
			r.Checks = gc.check.summary()
		}
	}
	return r
}

func (gc *guestCtx) ipv6State(it *kvmnetv1.Interface) string {
	v6 := gc.st.GetIpv6()
	if v6.GetAllDisabled() || v6.GetInterfaceDisabled()[it.GetName()] {
		return "disabled"
	}
	global, ll := false, false
	for _, a := range it.GetIpv6() {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			continue
		}
		if p.Addr().IsLinkLocalUnicast() {
			ll = true
		} else {
			global = true
		}
	}
	switch {
	case global && it.GetDefaultRouteV6():
		return "global+route"
	case global:
		return "global"
	case ll:
		return "link-local"
	}
	return "none"
}

func aptState(pm *kvmnetv1.PackageManagerState) string {
	state := func(s kvmnetv1.ConfigFileState, src string) string {
		switch s {
		case kvmnetv1.ConfigFileState_CONFIG_FILE_STATE_KVMNET, kvmnetv1.ConfigFileState_CONFIG_FILE_STATE_OTHER:
			if src != "" {
				return "forced (" + src + ")"
			}
			return "forced"
		case kvmnetv1.ConfigFileState_CONFIG_FILE_STATE_ABSENT:
			return "not forced"
		}
		return ""
	}
	if pm == nil {
		return "unknown"
	}
	if s := state(pm.GetAptForceIpv4(), pm.GetAptSource()); s != "" {
		return s
	}
	if s := state(pm.GetDnfIpResolveV4(), pm.GetDnfSource()); s != "" {
		return "dnf " + s
	}
	if pm.GetAptForceIpv4() == kvmnetv1.ConfigFileState_CONFIG_FILE_STATE_NOT_INSTALLED {
		return "n/a"
	}
	return "unknown"
}

// Domain-level rules.

func (gc *guestCtx) channelExposed() {
	a := gc.dom.ChannelAccess
	if a == nil || !a.Exposed() {
		return
	}
	who := whoGetsIn(*a)
	sev, allow := SeverityError, "unknown"
	impact := "they can call Apply and change the guest's network as root"
	if gc.st != nil && gc.st.GetConfig() != nil {
		if gc.st.GetConfig().GetAllowApply() {
			allow = "true"
		} else {
			sev, allow = SeverityWarning, "false"
			impact = "the agent is report-only (allow_apply=false), so they can read the guest's network state and run checks, not change it"
		}
	}
	evd := []string{ev("path", a.Path), ev("mode", a.Mode), ev("owner", a.Owner), ev("group", a.Group), ev("who", who), ev("allow_apply", allow)}
	if a.Evidence != "" {
		evd = append(evd, strings.Fields(a.Evidence)...)
	}
	gc.add(Finding{
		Code: CodeChannelSocketExposed, Severity: sev, Subject: SubjectGuest(gc.dom.Name, ""),
		Summary: fmt.Sprintf("the kvmnet channel socket %s (%s %s:%s) can be connected to by %s: %s",
			a.Path, a.Mode, a.Owner, a.Group, who, impact),
		Fix:      "kvmnetctl host fix --only channel_socket_exposed (moves the channel into /var/lib/kvmnet/channels, 0700, owned by QEMU's user; takes effect at the next boot of " + gc.dom.Name + ")",
		Evidence: evd,
	})
}

// whoGetsIn names who can connect: "everyone", "group kvm: alice, bob", "user carol".
func whoGetsIn(a snapshot.SocketAccess) string {
	if a.Everyone {
		return "everyone"
	}
	var parts []string
	groups := make([]string, 0, len(a.Groups))
	for g := range a.Groups {
		groups = append(groups, g)
	}
	slices.Sort(groups)
	for _, g := range groups {
		m := append([]string(nil), a.Groups[g]...)
		slices.Sort(m)
		if len(m) == 0 {
			parts = append(parts, "group "+g+" (no members now)")
		} else {
			parts = append(parts, "group "+g+": "+strings.Join(m, ", "))
		}
	}
	for _, u := range a.Users {
		parts = append(parts, "user "+u)
	}
	return strings.Join(parts, "; ")
}

func (gc *guestCtx) agentPresence() {
	if gc.kvmnetAgentMissing() {
		return
	}
	switch {
	case gc.transport() == snapshot.TransportNone:
		sev := SeverityWarning
		if !gc.dom.Running() {
			sev = SeverityInfo
		}
		gc.add(Finding{
			Code: CodeGuestAgentMissingChannel, Severity: sev, Subject: SubjectGuest(gc.dom.Name, ""),
			Summary: fmt.Sprintf("%s has no %s channel and no vsock device: only what the host sees is reported (lease, neighbour entry, link state), nothing from inside the guest",
				gc.dom.Name, snapshot.ChannelKvmnet),
			Fix:      "kvmnetctl guests enable-channel " + gc.dom.Name + ", then install kvmnet-agent in the guest",
			Evidence: append([]string{ev("transport", "none"), ev("vsock_cid", gc.dom.VsockCID), ev("state", gc.dom.State)}, gc.neitherAgent()...),
		})
	case gc.dom.Running() && !gc.g.Reachable && gc.g.Connected:
		// The agent took the connection, so it runs: installing it is not the advice.
		gc.add(Finding{
			Code: CodeGuestAgentUnreachable, Severity: SeverityWarning, Subject: SubjectGuest(gc.dom.Name, ""),
			Summary: fmt.Sprintf("the kvmnet agent of %s took the connection on %s but gave no answer: %s; the guest may be hung or overloaded; only host-side facts are reported",
				gc.dom.Name, orNone(gc.g.Address), orNone(gc.g.Error)),
			Fix: fmt.Sprintf("retry with more time (kvmnetctl guests status %s --timeout 30s); if it persists, look at the guest's load and console (virsh domstats %s, virsh console %s) and restart kvmnet-agent there",
				gc.dom.Name, gc.dom.Name, gc.dom.Name),
			Evidence: append([]string{ev("agent", "no_answer"), ev("transport", string(gc.transport())), ev("address", gc.g.Address), ev("error", gc.g.Error),
				ev("timed_out", fmt.Sprint(gc.g.TimedOut))}, gc.neitherAgent()...),
		})
	case gc.dom.Running() && !gc.g.Reachable:
		chState := ""
		if ch, ok := gc.dom.Channel(snapshot.ChannelKvmnet); ok {
			chState = ch.State
		}
		why := orNone(gc.g.Error)
		if chState == "disconnected" {
			why += " (channel state=disconnected: nothing in the guest has the port open)"
		}
		gc.add(Finding{
			Code: CodeGuestAgentUnreachable, Severity: SeverityWarning, Subject: SubjectGuest(gc.dom.Name, ""),
			Summary: fmt.Sprintf("the kvmnet agent of %s does not take connections on %s (not installed, not running, or its port is closed): %s; only host-side facts are reported",
				gc.dom.Name, orNone(gc.g.Address), why),
			Fix:      "install and start kvmnet-agent in the guest (dpkg -i kvmnet-agent_*.deb or rpm -i kvmnet-agent-*.rpm; systemctl enable --now kvmnet-agent)",
			Evidence: append([]string{ev("agent", "not_running"), ev("transport", string(gc.transport())), ev("address", gc.g.Address), ev("error", gc.g.Error), ev("channel_state", chState)}, gc.neitherAgent()...),
		})
	}
}

func (gc *guestCtx) qemuGA() {
	if _, ok := gc.dom.Channel(snapshot.ChannelQemuGA); !ok {
		gc.add(Finding{
			Code: CodeQemuGuestAgentMissing, Severity: SeverityWarning, Subject: SubjectGuest(gc.dom.Name, ""),
			Summary: fmt.Sprintf("%s has no %s channel: virsh domifaddr --source agent and virt-manager show no guest IP, clean shutdown needs ACPI",
				gc.dom.Name, snapshot.ChannelQemuGA),
			Fix:      fmt.Sprintf("virsh edit %s: add <channel type='unix'><target type='virtio' name='%s'/></channel>, then install qemu-guest-agent in the guest", gc.dom.Name, snapshot.ChannelQemuGA),
			Evidence: []string{ev("channel", "absent")},
		})
		return
	}
	if gc.st == nil || gc.st.GetQemuGuestAgent() == nil {
		return
	}
	q := gc.st.GetQemuGuestAgent()
	var summary, fix string
	switch {
	case !q.GetInstalled():
		summary = "qemu-guest-agent is not installed in " + gc.dom.Name + ": virsh domifaddr --source agent and virt-manager show no guest IP"
		fix = "install qemu-guest-agent in the guest (apt install qemu-guest-agent / dnf install qemu-guest-agent); it starts when its port appears"
	case !q.GetRunning():
		summary = fmt.Sprintf("qemu-guest-agent is installed in %s but not running (port present=%s)", gc.dom.Name, yesNo(q.GetChannelPresent()))
		fix = "systemctl start qemu-guest-agent in the guest (or reboot it so udev starts it)"
	default:
		return
	}
	gc.add(Finding{
		Code: CodeQemuGuestAgentMissing, Severity: SeverityWarning, Subject: SubjectGuest(gc.dom.Name, ""),
		Summary: summary, Fix: fix,
		Evidence: []string{ev("installed", q.GetInstalled()), ev("running", q.GetRunning()), ev("channel_present", q.GetChannelPresent())},
	})
}

// NIC rules.

func (gc *guestCtx) nicRules(n *nicCtx) {
	d := gc.d
	if n.nic.Type == "user" && n.nic.Backend == snapshot.NICBackendPasst {
		gc.passt(n)
		return
	}
	if n.nic.Type == "user" {
		gc.addNIC(n, Finding{
			Code: CodeSessionUsermodeNetwork, Severity: SeverityWarning,
			Summary: fmt.Sprintf("NIC %s uses QEMU user-mode networking (%s): no bridge, no DHCP lease the host can see, the host cannot reach the guest; outbound TCP/UDP works, ping may not",
				n.nic.MAC, orNone(d.s.URI)),
			Fix:      "attach the NIC to a libvirt network under qemu:///system (virsh -c qemu:///system edit " + gc.dom.Name + "), or to a host bridge through qemu-bridge-helper (allow the bridge in /etc/qemu/bridge.conf)",
			Evidence: []string{ev("type", "user"), ev("uri", d.s.URI), ev("session", d.s.Session)},
		})
		return
	}
	if n.nic.Type == "network" && (n.net == nil || !n.net.Active) {
		return // network_missing / network_inactive name the cause
	}
	if n.nic.LinkState == "down" {
		gc.addNIC(n, Finding{
			Code: CodeGuestNICLinkDown, Severity: SeverityError,
			Summary:  fmt.Sprintf("NIC %s (%s) has its link set down on the host: the guest sees no carrier", n.nic.MAC, orNone(n.nic.Target)),
			Fix:      fmt.Sprintf("virsh domif-setlink %s %s up", gc.dom.Name, firstNonEmpty(n.nic.Target, string(n.nic.MAC))),
			Evidence: []string{ev("link_state", "down"), ev("side", "host"), ev("vnet", n.nic.Target)},
		})
		return
	}
	if d.s.Host.Read && n.br != nil && n.nic.Target != "" && !slices.Contains(n.br.Ports, n.nic.Target) {
		gc.addNIC(n, Finding{
			Code: CodeGuestNICDetached, Severity: SeverityError,
			Summary: fmt.Sprintf("tap %s of NIC %s is not a port of bridge %s (ports: %s): the network was restarted under the running guest",
				n.nic.Target, n.nic.MAC, n.bridge, strings.Join(n.br.Ports, ",")),
			Fix:      fmt.Sprintf("ip link set dev %s master %s (or reboot %s)", n.nic.Target, n.bridge, gc.dom.Name),
			Evidence: []string{ev("vnet", n.nic.Target), ev("bridge_ports", n.br.Ports)},
		})
		return
	}
	if gc.st == nil {
		gc.hostOnly(n)
		return
	}
	gc.guestNIC(n)
}

func firstNonEmpty(a ...string) string {
	for _, s := range a {
		if s != "" {
			return s
		}
	}
	return ""
}

func inSubnet(addr, subnet string) bool {
	p, err := netip.ParsePrefix(subnet)
	if err != nil {
		return false
	}
	a, err := netip.ParseAddr(strings.SplitN(addr, "/", 2)[0])
	return err == nil && p.Contains(a)
}

// hostOnly judges a NIC of a guest without a reachable agent from the lease and neighbour table.
func (gc *guestCtx) hostOnly(n *nicCtx) {
	if n.net == nil || !servedByLibvirt(n.net) || !n.net.HasDHCP() || !n.net.LeasesSupported || n.lease != nil {
		return
	}
	sub := n.net.Subnet()
	if len(n.neigh) > 0 {
		for _, ip := range n.neigh {
			if sub != "" && !inSubnet(ip, sub) {
				gc.addNIC(n, Finding{
					Code: CodeGuestStaticWrongSubnet, Severity: SeverityError,
					Summary: fmt.Sprintf("the bridge %s sees MAC %s at %s, outside network %q's %s, and libvirt has no lease for it: a static address in the wrong subnet",
						n.bridge, n.nic.MAC, ip, n.netName, sub),
					Fix:      gc.agentFirst(n, "switches the NIC to DHCP; asks first"),
					Evidence: []string{ev("neighbor_ipv4", n.neigh), ev("subnet", sub), ev("lease", "none")},
				})
				return
			}
		}
		gc.addNIC(n, Finding{
			Code: CodeGuestNoLease, Severity: SeverityWarning,
			Summary: fmt.Sprintf("libvirt has no DHCP lease for %s, but the bridge %s sees it at %s: a static address (no agent to confirm)",
				n.nic.MAC, n.bridge, strings.Join(n.neigh, ",")),
			Fix:      gc.agentFirst(n, "creates a DHCP profile for the NIC"),
			Evidence: []string{ev("lease", "none"), ev("neighbor_ipv4", n.neigh)},
		})
		return
	}
	gc.addNIC(n, Finding{
		Code: CodeGuestNoLease, Severity: SeverityError,
		Summary: fmt.Sprintf("libvirt's DHCP server on %s has no lease for %s and the bridge has no neighbour entry for it: the guest has no address on %q (no agent to tell why)",
			n.bridge, n.nic.MAC, n.netName),
		Fix:      gc.agentFirst(n, "creates a DHCP profile for the NIC") + "; without an agent, in the guest: nmcli connection add type ethernet ifname IFACE con-name kvm-dhcp ipv4.method auto ipv6.method ignore && nmcli connection up kvm-dhcp",
		Evidence: []string{ev("lease", "none"), ev("neighbor_ipv4", "none"), ev("leases_on_network", len(n.net.Leases))},
	})
}

// agentFirst is the fix for a guest-side cause when the agent may be missing.
func (gc *guestCtx) agentFirst(n *nicCtx, what string) string {
	fix := gc.fixGuest(n) + " (" + what + ")"
	switch {
	case gc.transport() == snapshot.TransportNone:
		return "kvmnetctl guests enable-channel " + gc.dom.Name + " and install kvmnet-agent in the guest, then " + fix
	case !gc.g.Reachable:
		return "start kvmnet-agent in the guest, then " + fix
	}
	return fix
}

// profilesFor returns the NM profiles bound to the interface (by name or MAC) or active on it.
func (gc *guestCtx) profilesFor(it *kvmnetv1.Interface) []*kvmnetv1.Profile {
	var out []*kvmnetv1.Profile
	for _, p := range gc.st.GetNetworkManager().GetProfiles() {
		if p.GetInterfaceName() == it.GetName() || (p.GetMac() != "" && snapshot.ParseMAC(p.GetMac()) == snapshot.ParseMAC(it.GetMac())) ||
			p.GetActiveDevice() == it.GetName() {
			out = append(out, p)
		}
	}
	return out
}

func describeProfiles(ps []*kvmnetv1.Profile) string {
	if len(ps) == 0 {
		return "none"
	}
	var parts []string
	for _, p := range ps {
		s := fmt.Sprintf("%q (ipv4.method=%s", p.GetId(), p.GetIpv4Method())
		if len(p.GetIpv4Addresses()) > 0 {
			s += " " + JoinMax(p.GetIpv4Addresses(), ",", MaxJoined)
		}
		if p.GetActive() {
			s += ", active"
		}
		parts = append(parts, s+")")
	}
	return JoinMax(parts, "; ", MaxJoined)
}

func (gc *guestCtx) guestNIC(n *nicCtx) {
	if n.iface == nil {
		var seen []string
		for _, it := range gc.st.GetInterfaces() {
			seen = append(seen, it.GetName()+"="+string(snapshot.ParseMAC(it.GetMac())))
		}
		gc.addNIC(n, Finding{
			Code: CodeGuestNICNotSeen, Severity: SeverityError,
			Summary: fmt.Sprintf("the guest has no interface with MAC %s (model %s); it has: %s",
				n.nic.MAC, orNone(n.nic.Model), orNone(JoinMax(seen, " ", MaxJoined))),
			Fix:      fmt.Sprintf("give the NIC a model the guest has a driver for: virsh edit %s → <model type='virtio'/> (or e1000e), then reboot it", gc.dom.Name),
			Evidence: []string{ev("model", n.nic.Model), ev("guest_interfaces", seen)},
		})
		return
	}
	it := n.iface
	profs := gc.profilesFor(it)
	base := []string{ev("ifname", it.GetName()), ev("oper_state", it.GetOperState()), ev("lease", leaseStr(n.lease)), ev("profiles", describeProfiles(profs))}
	if st := stackName(it); st != "" {
		// Stack-neutral codes; which stack, file and stanza are evidence (agent/netstack's words).
		base = append(base, ev("stack", st), ev("stack_detail", it.GetStackDetail()))
	}
	var v4 []string
	for _, a := range it.GetIpv4() {
		if !strings.HasPrefix(a, "169.254.") {
			v4 = append(v4, a)
		}
	}
	if len(v4) == 0 {
		sev := SeverityError
		if n.net != nil && servedByLibvirt(n.net) && !n.net.HasDHCP() {
			sev = SeverityWarning // network_dhcp_missing is the cause
		}
		summary := fmt.Sprintf("%s (%s, %s) has no IPv4 address; libvirt lease: %s; NM profiles for it: %s",
			it.GetName(), n.nic.MAC, it.GetOperState(), leaseStr(n.lease), describeProfiles(profs))
		fix := gc.fixGuest(n) + fmt.Sprintf(" (creates kvm-dhcp-%s: ipv4.method auto, bound to MAC %s)", it.GetName(), n.nic.MAC)
		if strings.Contains(it.GetStackDetail(), "udev=pending") {
			// A NIC hot-plugged moments ago: NetworkManager takes it over once udev has initialised it.
			summary = fmt.Sprintf("%s (%s) is new and not yet managed by NetworkManager (udev has not initialised it yet), so it has no IPv4 address yet", it.GetName(), n.nic.MAC)
			fix = gc.fixGuest(n) + " (waits up to 30 s for NetworkManager to take the NIC over, then creates its DHCP profile)"
		}
		gc.addNIC(n, Finding{Code: CodeGuestNoIPv4, Severity: sev, Summary: summary, Fix: fix, Evidence: base})
		return
	}
	if it.GetOperState() == "down" {
		gc.addNIC(n, Finding{
			Code: CodeGuestNICLinkDown, Severity: SeverityError,
			Summary:  fmt.Sprintf("%s (%s) is down in the guest (carrier=%s) although the host link is up", it.GetName(), n.nic.MAC, yesNo(it.GetCarrier())),
			Fix:      gc.fixGuest(n) + " (activates the NIC's DHCP profile)",
			Evidence: append(base, ev("side", "guest"), ev("carrier", it.GetCarrier())),
		})
	}
	gc.subnetAndLease(n, v4, profs, base)
}

func leaseStr(l *snapshot.Lease) string {
	if l == nil {
		return "none"
	}
	return l.IP
}

func (gc *guestCtx) subnetAndLease(n *nicCtx, v4 []string, profs []*kvmnetv1.Profile, base []string) {
	it := n.iface
	var subnets []string
	libvirtDHCP := n.net != nil && servedByLibvirt(n.net)
	if libvirtDHCP {
		if s := n.net.Subnet(); s != "" {
			subnets = []string{s}
		}
	} else if n.br != nil {
		for _, a := range n.br.Addresses {
			if p, err := netip.ParsePrefix(a); err == nil && p.Addr().Is4() {
				subnets = append(subnets, p.Masked().String())
			}
		}
	}
	if len(subnets) > 0 {
		inside := false
		for _, a := range v4 {
			for _, s := range subnets {
				if inSubnet(a, s) {
					inside = true
				}
			}
		}
		if !inside {
			sev := SeverityError
			where := fmt.Sprintf("network %q's %s", n.netName, strings.Join(subnets, ","))
			if !libvirtDHCP {
				sev = SeverityWarning // a bridged LAN may carry more subnets than the host's own
				where = fmt.Sprintf("the subnets of bridge %s (%s)", n.bridge, strings.Join(subnets, ","))
			}
			gc.addNIC(n, Finding{
				Code: CodeGuestStaticWrongSubnet, Severity: sev,
				Summary: fmt.Sprintf("%s has %s, outside %s (profiles: %s): the gateway is unreachable",
					it.GetName(), strings.Join(v4, ","), where, describeProfiles(profs)),
				Fix:      gc.fixGuest(n) + " (switches the NIC to DHCP; asks first)",
				Evidence: append(base, ev("guest_ipv4", v4), ev("subnet", subnets), ev("dynamic", it.GetIpv4Dynamic())),
			})
			return
		}
	}
	if !libvirtDHCP || !n.net.LeasesSupported || !n.net.HasDHCP() {
		return
	}
	if n.lease == nil {
		if it.GetIpv4Dynamic() {
			gc.addNIC(n, Finding{
				Code: CodeGuestNoLease, Severity: SeverityWarning,
				Summary: fmt.Sprintf("%s got %s by DHCP but libvirt's dnsmasq on %s has no lease for %s: another DHCP server answers on the bridge, or the lease file was lost",
					it.GetName(), strings.Join(v4, ","), n.bridge, n.nic.MAC),
				Fix:      gc.fixGuest(n) + " (renews the lease through the kvm-dhcp profile)",
				Evidence: append(base, ev("guest_ipv4", v4), ev("dynamic", true)),
			})
		}
		return
	}
	for _, a := range v4 {
		if strings.SplitN(a, "/", 2)[0] == n.lease.IP {
			return
		}
	}
	gc.addNIC(n, Finding{
		Code: CodeGuestIPLeaseMismatch, Severity: SeverityWarning,
		Summary: fmt.Sprintf("%s has %s but libvirt leased %s to %s (profiles: %s): DNS names and port forwards that follow the lease point elsewhere",
			it.GetName(), strings.Join(v4, ","), n.lease.IP, n.nic.MAC, describeProfiles(profs)),
		Fix:      gc.fixGuest(n) + " (makes the NIC use its DHCP lease)",
		Evidence: append(base, ev("guest_ipv4", v4), ev("lease_ipv4", n.lease.IP), ev("dynamic", it.GetIpv4Dynamic())),
	})
}

// profiles flags NetworkManager profiles bound to interfaces that do not exist.
func (gc *guestCtx) profiles() {
	ifaces := gc.st.GetInterfaces()
	var names []string
	for _, it := range ifaces {
		names = append(names, it.GetName())
	}
	// the NIC the profile was probably meant for: the only one without IPv4
	var target *nicCtx
	without := 0
	for _, n := range gc.nics {
		if n.iface != nil && len(n.row.GuestIPv4) == 0 {
			without++
			target = n
		}
	}
	if without != 1 {
		target = nil
	}
	for _, p := range gc.st.GetNetworkManager().GetProfiles() {
		if p.GetNameConflict() != "" {
			gc.nameTaken(p)
		}
		if p.GetType() != "802-3-ethernet" && p.GetType() != "ethernet" {
			continue
		}
		// The agent decides "bound to a missing interface" (against the kernel's interfaces) and
		// reports it; here only the wording picks which binding to name.
		if !p.GetBoundToMissingInterface() {
			continue
		}
		bound := "interface-name " + p.GetInterfaceName()
		if p.GetInterfaceName() == "" || slices.Contains(names, p.GetInterfaceName()) {
			bound = "mac " + p.GetMac()
		}
		sev := SeverityWarning
		if without > 0 {
			sev = SeverityError
		}
		f := Finding{
			Code: CodeGuestProfileWrongInterface, Severity: sev, Subject: SubjectGuest(gc.dom.Name, ""),
			Summary: fmt.Sprintf("NM profile %q (ipv4.method=%s) is bound to %s, which does not exist in the guest (interfaces: %s): it never activates",
				p.GetId(), p.GetIpv4Method(), bound, JoinMax(names, ", ", MaxJoined)),
			Fix: gc.fixGuest(target) + " (removes it and creates a DHCP profile bound to the NIC's MAC)",
			Evidence: []string{ev("profile", p.GetId()), ev("uuid", p.GetUuid()), ev("interface_name", p.GetInterfaceName()),
				ev("profile_mac", p.GetMac()), ev("guest_interfaces", names)},
		}
		if target != nil {
			gc.addNIC(target, f)
		} else {
			gc.add(f)
		}
	}
}

// nameTaken reports a profile the agent found under kvmnet's name without kvmnet's marker. The
// agent decides (name_conflict); here the finding goes to the NIC the name is for, and says both
// ways out: by hand in the guest, or the consent flag that lets the fix replace it.
func (gc *guestCtx) nameTaken(p *kvmnetv1.Profile) {
	ifname := strings.TrimPrefix(p.GetId(), "kvm-dhcp-")
	var target *nicCtx
	for _, n := range gc.nics {
		if n.iface != nil && n.iface.GetName() == ifname {
			target = n
		}
	}
	f := Finding{
		Code: CodeGuestProfileNameTaken, Severity: SeverityWarning, Subject: SubjectGuest(gc.dom.Name, ""),
		Summary: fmt.Sprintf("NM profile %q (uuid %s, ipv4.method=%s) has the name kvmnet gives its own profile for %s but was not made by kvmnet: kvmnet neither adopts nor changes it, and its DHCP fix for %s waits for the name",
			p.GetId(), p.GetUuid(), p.GetIpv4Method(), ifname, ifname),
		Fix: fmt.Sprintf("in the guest, rename it (nmcli connection modify %s connection.id NEW-NAME) or delete it (nmcli connection delete %s); or let kvmnet replace it with its own: %s %s",
			p.GetUuid(), p.GetUuid(), gc.fixGuest(target), ReplaceForeignProfileFlag),
		Evidence: []string{ev("profile", p.GetId()), ev("uuid", p.GetUuid()), ev("managed_by_kvmnet", p.GetManagedByKvmnet()),
			ev("name_conflict", p.GetNameConflict()), ev("interface_name", p.GetInterfaceName()), ev("profile_mac", p.GetMac()),
			ev("active", p.GetActive()), ev("side", "guest")},
	}
	if target != nil {
		gc.addNIC(target, f)
	} else {
		gc.add(f)
	}
}

// nameTakenFixes: on a NIC whose kvmnet profile name is held by someone else's profile, the DHCP
// fix of every other finding would delete that profile, so `guests fix` plans it only with the
// consent flag: their fix text says so.
func (gc *guestCtx) nameTakenFixes() {
	for _, t := range gc.out {
		if t.Code != CodeGuestProfileNameTaken || t.MAC == "" {
			continue
		}
		id, _ := t.Get("profile")
		for i, f := range gc.out {
			if f.MAC == t.MAC && f.Code != CodeGuestProfileNameTaken && FixerFor(f) == FixerGuestDHCP && strings.Contains(f.Fix, "kvmnetctl guests fix") {
				gc.out[i].Fix = strings.Replace(f.Fix, "--nic "+string(t.MAC), "--nic "+string(t.MAC)+" "+ReplaceForeignProfileFlag, 1) +
					fmt.Sprintf("; %s replaces profile %q, which someone else made under kvmnet's name (see %s)", ReplaceForeignProfileFlag, id, CodeGuestProfileNameTaken)
			}
		}
	}
}

// defaultRoute flags a guest with IPv4 but no IPv4 default route when its network has a way out.
func (gc *guestCtx) defaultRoute() {
	if snapshot.DefaultIfaceV4(gc.st) != "" {
		return
	}
	for _, n := range gc.nics {
		if n.iface == nil || len(n.row.GuestIPv4) == 0 || !expectsEgress(n.net) || n.nic.Type == "user" {
			continue
		}
		if n.net != nil && !n.net.Active {
			continue
		}
		gw := ""
		if n.net != nil {
			gw = n.net.BridgeIPv4()
		}
		gc.addNIC(n, Finding{
			Code: CodeGuestNoDefaultRoute, Severity: SeverityError,
			Summary: fmt.Sprintf("%s has %s but the guest has no IPv4 default route (expected via %s): only the local subnet is reachable",
				n.iface.GetName(), strings.Join(n.row.GuestIPv4, ","), orNone(gw)),
			Fix:      gc.fixGuest(n) + " (the DHCP profile takes the gateway from the network)",
			Evidence: []string{ev("ifname", n.iface.GetName()), ev("guest_ipv4", n.row.GuestIPv4), ev("gateway", gw)},
		})
		return
	}
}

// resolver flags a guest without nameservers.
func (gc *guestCtx) resolver() {
	dns := gc.st.GetDns()
	if dns == nil || len(dns.GetServers()) > 0 || snapshot.DefaultIfaceV4(gc.st) == "" {
		return
	}
	n := gc.defaultNIC()
	f := Finding{
		Code: CodeGuestDNSFailure, Severity: SeverityWarning, Subject: SubjectGuest(gc.dom.Name, ""),
		Summary:  fmt.Sprintf("the guest's resolver has no nameserver (mode %s, %s): names cannot be resolved", strings.TrimPrefix(dns.GetMode().String(), "RESOLVER_MODE_"), orNone(dns.GetDetail())),
		Fix:      gc.fixGuest(n) + " (the DHCP profile takes the network's DNS server)",
		Evidence: []string{ev("resolver_mode", dns.GetMode().String()), ev("servers", "none"), ev("side", "guest")},
	}
	if n != nil {
		gc.addNIC(n, f)
	} else {
		gc.add(f)
	}
}

// defaultNIC is the NIC that carries the IPv4 default route.
func (gc *guestCtx) defaultNIC() *nicCtx {
	name := snapshot.DefaultIfaceV4(gc.st)
	for _, n := range gc.nics {
		if n.iface != nil && n.iface.GetName() == name {
			return n
		}
	}
	return nil
}

// stackName is the interface's stack as a lower-case word ("" when the agent did not say).
func stackName(it *kvmnetv1.Interface) string {
	if it == nil || it.GetStack() == kvmnetv1.NetworkStack_NETWORK_STACK_UNSPECIFIED {
		return ""
	}
	return strings.ToLower(strings.TrimPrefix(it.GetStack().String(), "NETWORK_STACK_"))
}
