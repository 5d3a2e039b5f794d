package diagnose

import (
	"fmt"
	"net"
	"strings"

	"github.com/kvmnet/kvmnet/controller/snapshot"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// checkSet sorts a guest's check results by what they prove. Checks are classified by kind, family
// and target, not by name, so results of any caller (status, fix verification) are understood.
type checkSet struct {
	gw4, gw6, pingOut, dns4, dns6, bridge, egress4, egress6 []*kvmnetv1.CheckResult
}

func classifyChecks(rs []*kvmnetv1.CheckResult, nets []snapshot.Network) checkSet {
	bridgeIPs := map[string]bool{}
	for i := range nets {
		for _, ip := range nets[i].IPs {
			bridgeIPs[ip.Address] = true
		}
	}
	var cs checkSet
	for _, r := range rs {
		c := r.GetCheck()
		v6 := c.GetFamily() == kvmnetv1.Family_FAMILY_V6
		switch c.GetKind() {
		case kvmnetv1.CheckKind_CHECK_KIND_PING:
			switch {
			case c.GetTarget() == "" && v6:
				cs.gw6 = append(cs.gw6, r)
			case c.GetTarget() == "" || bridgeIPs[c.GetTarget()]:
				cs.gw4 = append(cs.gw4, r)
			default:
				cs.pingOut = append(cs.pingOut, r)
			}
		case kvmnetv1.CheckKind_CHECK_KIND_DNS:
			if v6 {
				cs.dns6 = append(cs.dns6, r)
			} else {
				cs.dns4 = append(cs.dns4, r)
			}
		case kvmnetv1.CheckKind_CHECK_KIND_TCP, kvmnetv1.CheckKind_CHECK_KIND_HTTP:
			host := c.GetTarget()
			if h, _, err := net.SplitHostPort(host); err == nil {
				host = h
			}
			switch {
			case c.GetKind() == kvmnetv1.CheckKind_CHECK_KIND_TCP && bridgeIPs[host]:
				cs.bridge = append(cs.bridge, r)
			case v6:
				cs.egress6 = append(cs.egress6, r)
			default:
				cs.egress4 = append(cs.egress4, r)
			}
		}
	}
	return cs
}

func anyFailed(rs []*kvmnetv1.CheckResult) *kvmnetv1.CheckResult {
	for _, r := range rs {
		if !r.GetOk() {
			return r
		}
	}
	return nil
}

func allOK(rs []*kvmnetv1.CheckResult) bool { return len(rs) > 0 && anyFailed(rs) == nil }

func (cs checkSet) empty() bool {
	return len(cs.gw4)+len(cs.gw6)+len(cs.pingOut)+len(cs.dns4)+len(cs.dns6)+len(cs.bridge)+len(cs.egress4)+len(cs.egress6) == 0
}

// summary is the compact "checks" column: gw=ok dns=ok egress=fail ...
func (cs checkSet) summary() string {
	if cs.empty() {
		return "-"
	}
	var parts []string
	for _, x := range []struct {
		name string
		rs   []*kvmnetv1.CheckResult
	}{{"gw", cs.gw4}, {"ping", cs.pingOut}, {"dns", cs.dns4}, {"dnsmasq", cs.bridge}, {"egress", cs.egress4},
		{"gw6", cs.gw6}, {"dns6", cs.dns6}, {"egress6", cs.egress6}} {
		if len(x.rs) == 0 {
			continue
		}
		st := "ok"
		if anyFailed(x.rs) != nil {
			st = "fail"
		}
		parts = append(parts, x.name+"="+st)
	}
	return strings.Join(parts, " ")
}

func checkReports(rs []*kvmnetv1.CheckResult) []CheckReport {
	var out []CheckReport
	for _, r := range rs {
		c := r.GetCheck()
		out = append(out, CheckReport{
			Name: c.GetName(), Kind: strings.ToLower(strings.TrimPrefix(c.GetKind().String(), "CHECK_KIND_")),
			Family: strings.ToLower(strings.TrimPrefix(c.GetFamily().String(), "FAMILY_")), Target: c.GetTarget(),
			OK: r.GetOk(), Error: r.GetError(), Address: r.GetAddress(), LatencyMS: float64(r.GetLatencyUs()) / 1000,
		})
	}
	return out
}

func checkEv(prefix string, r *kvmnetv1.CheckResult) []string {
	c := r.GetCheck()
	out := []string{ev(prefix+"_target", c.GetTarget()), ev(prefix+"_ok", r.GetOk())}
	if r.GetAddress() != "" {
		out = append(out, ev(prefix+"_address", r.GetAddress()))
	}
	if r.GetError() != "" {
		out = append(out, ev(prefix+"_error", r.GetError()))
	}
	return out
}

func targetOr(r *kvmnetv1.CheckResult, def string) string {
	if t := r.GetCheck().GetTarget(); t != "" {
		return t
	}
	if r.GetAddress() != "" {
		return r.GetAddress()
	}
	return def
}

// checkRules turns check results into findings: "ping works but HTTP fails", DNS failures.
func (gc *guestCtx) checkRules() {
	cs := gc.check
	n := gc.defaultNIC()
	if cs.empty() || n == nil {
		return
	}
	if r := anyFailed(cs.gw4); r != nil {
		gc.addNIC(n, Finding{
			Code: CodeGuestGatewayUnreachable, Severity: SeverityError,
			Summary: fmt.Sprintf("the guest's IPv4 gateway %s does not answer ping from %s: %s",
				targetOr(r, "(default gateway)"), n.iface.GetName(), orNone(r.GetError())),
			Fix:      gc.fixGuest(n) + " (re-applies the DHCP profile: address, gateway, DNS from the network)",
			Evidence: checkEv("gateway", r),
		})
		return
	}
	gwOK := allOK(cs.gw4)
	dnsFail := anyFailed(cs.dns4)
	if dnsFail != nil {
		gc.dnsFailure(n, dnsFail, gwOK)
	}
	r := anyFailed(cs.egress4)
	if r == nil || (n.net != nil && !expectsEgress(n.net)) {
		return
	}
	if dnsFail != nil && r.GetAddress() == "" {
		return // the target never resolved: the DNS finding is the cause
	}
	host := "unknown"
	evd := append(checkEv("egress", r), ev("gateway_ok", gwOK))
	if f, ok := gc.d.egressFlow(n.netName); ok {
		host = fmt.Sprintf("%s by %q (%s)", f.Verdict, f.Rule, f.Chain)
		evd = append(evd, flowEvidence(f)...)
	}
	fix := "kvmnetctl host check (names the rule that drops the flow), then kvmnetctl host fix"
	if causes := gc.d.affects[gc.d.causeKey(n)]; len(causes) > 0 {
		var cs, fixable, manual []string
		for _, c := range causes {
			cs = append(cs, string(c))
			// Only codes host fix knows go behind --only; the others' fix is a manual step the
			// host finding names (e.g. a foreign REJECT rule kvmnet does not own).
			if info, _ := Lookup(c); info.Fixer == FixerHost {
				fixable = append(fixable, string(c))
			} else {
				manual = append(manual, string(c))
			}
		}
		switch {
		case len(manual) == 0:
			fix = "kvmnetctl host fix --only " + strings.Join(fixable, ",") + " (a host-side cause; nothing to change in the guest)"
		case len(fixable) == 0:
			fix = "kvmnetctl host check names the manual step for " + strings.Join(manual, ",") + " (a host-side cause; nothing to change in the guest)"
		default:
			fix = "kvmnetctl host fix --only " + strings.Join(fixable, ",") + ", then the manual step kvmnetctl host check names for " +
				strings.Join(manual, ",") + " (host-side causes; nothing to change in the guest)"
		}
		evd = append(evd, ev("host_causes", cs))
	} else if why, upFix, upEv, ok := gc.d.upstreamReturn(n.net); ok {
		// Nothing on this host drops it: on a network without NAT the replies depend on a router the
		// host cannot inspect, so say that instead of sending the user to host fix.
		host += "; " + why
		fix = upFix
		evd = append(evd, upEv...)
	}
	gw := "the gateway answers ping"
	if !gwOK {
		gw = "the gateway was not checked"
	}
	gc.addNIC(n, Finding{
		Code: CodeGuestEgressBlocked, Severity: SeverityError,
		Summary: fmt.Sprintf("%s but %s to %s fails from the guest: %s; host firewall verdict for new egress: %s",
			gw, strings.ToUpper(strings.TrimPrefix(r.GetCheck().GetKind().String(), "CHECK_KIND_")), targetOr(r, "?"), orNone(r.GetError()), host),
		Fix:      fix,
		Evidence: evd,
	})
}

func (gc *guestCtx) dnsFailure(n *nicCtx, r *kvmnetv1.CheckResult, gwOK bool) {
	dns := gc.st.GetDns()
	servers := dns.GetServers()
	evd := append(checkEv("dns", r), ev("resolver_mode", dns.GetMode().String()), ev("servers", servers), ev("gateway_ok", gwOK))
	var why, fix string
	bip := ""
	if n.net != nil {
		bip = n.net.BridgeIPv4()
	}
	bridgeFail := anyFailed(gc.check.bridge)
	override := gc.dnsOverride(n)
	switch {
	case override != nil:
		// Set by hand in the profile: replacing it is the user's call (consent flag), and the fix
		// then resets exactly that.
		why = fmt.Sprintf("NM profile %q sets DNS by hand (ipv4.dns %s, ignore-auto-dns %t) instead of the network's DNS server %s",
			override.GetId(), orNone(strings.Join(override.GetIpv4Dns(), ",")), override.GetIpv4IgnoreAutoDns(), orNone(bip))
		fix = gc.fixGuest(n) + " " + DNSResetFlag + " (replaces the profile's DNS by the network's, through its DHCP profile)"
		evd = append(evd, ev("side", "guest"), ev("dns_override", true), ev("profile", override.GetId()), ev("profile_dns", override.GetIpv4Dns()),
			ev("ignore_auto_dns", override.GetIpv4IgnoreAutoDns()))
	case n.net != nil && servedByLibvirt(n.net) && bip != "" && len(servers) > 0 && !containsStr(servers, bip) && dns.GetMode() != kvmnetv1.ResolverMode_RESOLVER_MODE_SYSTEMD_RESOLVED:
		why = fmt.Sprintf("the guest asks %s instead of the network's DNS server %s", strings.Join(servers, ","), bip)
		fix = gc.fixGuest(n) + " (the DHCP profile takes DNS from the network)"
		evd = append(evd, ev("side", "guest"))
	case bridgeFail != nil:
		why = fmt.Sprintf("TCP to %s fails too: libvirt's dnsmasq is not reachable (%s)", targetOr(bridgeFail, bip+":53"), orNone(bridgeFail.GetError()))
		evd = append(evd, checkEv("dnsmasq", bridgeFail)...)
		fix = "kvmnetctl host check (dnsmasq and firewall input rules for " + n.bridge + ")"
		if n.netName != "" {
			fix += "; " + restartNet(n.netName) + " restarts dnsmasq"
		}
		evd = append(evd, ev("side", "host"))
	case allOK(gc.check.bridge):
		why = "dnsmasq answers on the bridge, so it cannot forward: the host's own resolver or the network's <dns><forwarder> is wrong"
		fix = "check the host's DNS (resolvectl status or /etc/resolv.conf)"
		if n.netName != "" {
			fix += fmt.Sprintf(", or set forwarders: virsh net-edit %s → <dns><forwarder addr='IP'/></dns>, then %s", n.netName, restartNet(n.netName))
		}
		evd = append(evd, ev("side", "host"))
	default:
		why = "the resolver (" + orNone(strings.Join(servers, ",")) + ") does not answer"
		fix = "kvmnetctl host check (dnsmasq status), then " + gc.fixGuest(n)
		evd = append(evd, ev("side", "guest"))
	}
	gc.addNIC(n, Finding{
		Code: CodeGuestDNSFailure, Severity: SeverityError,
		Summary: fmt.Sprintf("resolving %s through the guest's resolver fails (%s): %s",
			r.GetCheck().GetTarget(), orNone(r.GetError()), why),
		Fix: fix, Evidence: evd,
	})
}

// DNSResetFlag is the guests fix flag that consents to replacing DNS set by hand in a profile.
const DNSResetFlag = "--allow-dns-reset"

// ReplaceForeignProfileFlag is the guests fix flag that consents to deleting a profile someone else
// made under kvmnet's name (guest_profile_name_taken) so kvmnet's own can take the name.
const ReplaceForeignProfileFlag = "--replace-foreign-profile"

// dnsOverride returns the profile active on n's interface when it sets DNS by hand (static servers
// with DHCP's ignored, or static servers at all on a DHCP network), else nil.
func (gc *guestCtx) dnsOverride(n *nicCtx) *kvmnetv1.Profile {
	if n.iface == nil {
		return nil
	}
	for _, p := range gc.st.GetNetworkManager().GetProfiles() {
		if p.GetActive() && p.GetActiveDevice() == n.iface.GetName() && (p.GetIpv4IgnoreAutoDns() || len(p.GetIpv4Dns()) > 0) &&
			p.GetIpv4Method() == "auto" {
			return p
		}
	}
	return nil
}

func containsStr(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// ipv6 flags IPv6 the host side cannot route, and package managers that would try it first.
func (gc *guestCtx) ipv6() {
	v6 := gc.st.GetIpv6()
	if v6 == nil || v6.GetAllDisabled() || !(v6.GetHasGlobalAddress() || v6.GetHasDefaultRoute()) {
		return
	}
	n := gc.defaultNIC()
	if n == nil {
		for _, x := range gc.nics {
			if x.iface != nil {
				n = x
				break
			}
		}
	}
	if n == nil {
		return
	}
	var reasons []string
	for _, x := range gc.nics {
		if x.net == nil || !x.net.Active || !routesOut(x.net) {
			continue
		}
		if !hasIPv6(x.net) {
			reasons = append(reasons, fmt.Sprintf("network %q has no IPv6", x.netName))
		}
		if gc.d.s.Host.Read && !gc.d.s.Host.IPv6DefaultRoute {
			reasons = append(reasons, "the host has no IPv6 default route")
		}
	}
	reasons = dedup(reasons)
	evd := []string{ev("has_global_address", v6.GetHasGlobalAddress()), ev("has_default_route", v6.GetHasDefaultRoute()),
		ev("ipv6_usable", v6.GetUsable()), ev("host_ipv6_default_route", gc.d.s.Host.IPv6DefaultRoute)}
	sev := SeverityWarning
	if r := firstNonNil(anyFailed(gc.check.egress6), anyFailed(gc.check.gw6)); r != nil && anyFailed(gc.check.egress4) == nil {
		sev = SeverityError
		evd = append(evd, checkEv("v6", r)...)
		reasons = append(reasons, fmt.Sprintf("%s over IPv6 fails (%s) while IPv4 works", targetOr(r, "the gateway"), orNone(r.GetError())))
	}
	if len(reasons) == 0 {
		return
	}
	gc.addNIC(n, Finding{
		Code: CodeGuestIPv6Unroutable, Severity: sev,
		Summary: fmt.Sprintf("the guest has IPv6 (global address=%s, default route=%s) but %s: programs that try IPv6 first hang until they time out",
			yesNo(v6.GetHasGlobalAddress()), yesNo(v6.GetHasDefaultRoute()), strings.Join(reasons, "; ")),
		Fix:      gc.fixGuest(nil) + " (disables IPv6 in the guest via /etc/sysctl.d/99-kvmnet-disable-ipv6.conf and forces apt/dnf to IPv4)",
		Evidence: append(evd, ev("reasons", strings.Join(reasons, "; "))),
	})
	pm := gc.st.GetPackageManager()
	absent := kvmnetv1.ConfigFileState_CONFIG_FILE_STATE_ABSENT
	var pms []string
	if pm.GetAptForceIpv4() == absent {
		pms = append(pms, "apt (no Acquire::ForceIPv4)")
	}
	if pm.GetDnfIpResolveV4() == absent {
		pms = append(pms, "dnf (no ip_resolve=4)")
	}
	if len(pms) == 0 {
		return
	}
	gc.addNIC(n, Finding{
		Code: CodeGuestAptIPv6Risk, Severity: SeverityWarning,
		Summary:  fmt.Sprintf("%s will prefer IPv6 mirrors the guest cannot reach: updates hang while ping works", strings.Join(pms, ", ")),
		Fix:      gc.fixGuest(nil) + " (writes /etc/apt/apt.conf.d/99kvmnet-force-ipv4: Acquire::ForceIPv4 \"true\"; and dnf ip_resolve=4)",
		Evidence: []string{ev("apt_force_ipv4", pm.GetAptForceIpv4().String()), ev("dnf_ip_resolve_v4", pm.GetDnfIpResolveV4().String())},
	})
}

func firstNonNil(rs ...*kvmnetv1.CheckResult) *kvmnetv1.CheckResult {
	for _, r := range rs {
		if r != nil {
			return r
		}
	}
	return nil
}

func dedup(ss []string) []string {
	var out []string
	for _, s := range ss {
		if !containsStr(out, s) {
			out = append(out, s)
		}
	}
	return out
}
