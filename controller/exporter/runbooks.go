package exporter

import (
	"bytes"
	"fmt"

	"github.com/kvmnet/kvmnet/controller/diagnose"
)

// impacts says what each code costs the guests: the one part of a runbook the catalogue does not
// hold. A code missing here fails TestRulesAndRunbooks.
var impacts = map[diagnose.Code]string{
	diagnose.CodeNetworkMissing:               "Guests whose NICs name the network cannot start (libvirt refuses the domain) or, when hot-plugged, have no network at all.",
	diagnose.CodeNetworkInactive:              "Guests on the network have no bridge to attach to: running ones lose connectivity, new ones fail to start.",
	diagnose.CodeNetworkAutostartOff:          "Nothing is broken now; after the next reboot of the host (or libvirtd restart) the network stays down and its guests get no address.",
	diagnose.CodeNetworkDHCPMissing:           "Guests configured for DHCP (the default of every cloud image) never get an address on this network.",
	diagnose.CodeBridgeDown:                   "Every guest on the network is cut off: no DHCP, no gateway, no traffic between guests.",
	diagnose.CodeIPForwardOff:                 "Guests on NAT and routed networks reach the host but nothing beyond it: apt, DNS forwarding and every outbound connection fail.",
	diagnose.CodeNATMasqueradeMissing:         "Guests reach the host but their traffic leaves with private source addresses and the replies never come back: no internet.",
	diagnose.CodeLibvirtRulesMissing:          "libvirt's firewall rules for DHCP, DNS, forwarding and NAT are gone (usually after a firewall reload): new leases fail and guest traffic is dropped or not NATed.",
	diagnose.CodeUFWRoutedBlocked:             "Ping from the guest to the host works, everything routed through the host (apt, DNS to upstream, HTTP) is dropped by UFW.",
	diagnose.CodeForwardPolicyDrop:            "Guest traffic to the outside is dropped by the FORWARD policy (usually set by Docker): the guest has an address but no internet.",
	diagnose.CodeFirewallEgressBlocked:        "A rule named in the evidence drops guest traffic to the uplink: the guest has an address and a gateway but no internet.",
	diagnose.CodeNetworkForwardDevMismatch:    "libvirt accepts the guests' traffic only out by the network's forward dev; the default route now leaves by another interface (renamed NIC, NIC moved into a bridge), so libvirt's own catch-all rejects it: no internet.",
	diagnose.CodeHostDHCPDNSBlocked:           "Guests get no lease (DHCP dropped) or cannot resolve names (DNS to the bridge dropped).",
	diagnose.CodeFirewalldZoneMissing:         "firewalld has libvirt's bridge in another zone (or has no libvirt zone at all): the default zone rejects guests' DHCP and DNS, and forwarding stops.",
	diagnose.CodeFirewalldPolicyRejectForward: "A firewalld policy rejects guests' forwarded traffic: they get a lease and resolve names through the host, but reach nothing beyond it.",
	diagnose.CodeFirewallUnreadable:           "None by itself: firewall causes could not be judged, so a blocked guest may show no cause.",
	diagnose.CodeBridgeNetfilterDrop:          "Guests on a bridged network (type='bridge' on a LAN bridge) get no traffic through the host: br_netfilter sends their frames through the IP FORWARD hook, where a rule or policy (usually Docker's DROP) drops them.",
	diagnose.CodeHostBridgeDown:               "Guests plugged into the host bridge (type='bridge') have no network at all: no DHCP from the LAN, no traffic.",
	diagnose.CodeHostBridgeNoUplink:           "The host bridge connects its guests to each other but not to the LAN: no DHCP from the LAN router, no way out.",
	diagnose.CodeBridgePortBlocked:            "Spanning tree keeps the guest's tap from forwarding: the guest's frames never reach the bridge.",
	diagnose.CodeDnsmasqDown:                  "Guests on the network get no new leases and cannot resolve names through the host.",
	diagnose.CodeGuestNICLinkDown:             "The guest's NIC has no carrier: no address, no traffic on that NIC.",
	diagnose.CodeGuestNICDetached:             "The guest's tap is not on its bridge (typically after the network was restarted): the NIC is up but nothing reaches it.",
	diagnose.CodeGuestNICNotSeen:              "The guest has no interface for this NIC (driver missing or device not initialised): that network is unusable from the guest.",
	diagnose.CodeGuestNoIPv4:                  "The guest has no IPv4 address on the NIC: no connectivity through it.",
	diagnose.CodeGuestNoLease:                 "libvirt's DHCP server handed out nothing for the MAC: the guest has no address, or one libvirt does not know.",
	diagnose.CodeGuestIPLeaseMismatch:         "The guest uses another address than its lease: host-side name resolution and firewall rules keyed on the lease miss it.",
	diagnose.CodeGuestStaticWrongSubnet:       "The guest's static address is outside the network's subnet: no gateway is reachable, so no traffic leaves the guest.",
	diagnose.CodeGuestProfileWrongInterface:   "The NetworkManager profile waits for an interface that does not exist (eth0 on an enp1s0 guest): the real NIC stays unconfigured.",
	diagnose.CodeGuestProfileNameTaken:        "Nothing breaks by itself: the profile someone else made keeps whatever it does. But kvmnet cannot give the NIC its own DHCP profile until the name is free, so a repair of that NIC waits for the user (rename, delete, or --replace-foreign-profile).",
	diagnose.CodeGuestNoDefaultRoute:          "The guest reaches its own subnet only: no internet, no DNS beyond the host.",
	diagnose.CodeGuestGatewayUnreachable:      "The guest's gateway does not answer: nothing beyond the subnet is reachable.",
	diagnose.CodeGuestIPv6Unroutable:          "Programs that prefer IPv6 (apt, curl, pip) hang for a long time before falling back or fail outright.",
	diagnose.CodeGuestAptIPv6Risk:             "apt/dnf may try unreachable IPv6 mirrors first and hang.",
	diagnose.CodeGuestDNSFailure:              "Names do not resolve in the guest: apt, curl and most services fail even though IP connectivity may work.",
	diagnose.CodeGuestEgressBlocked:           "The gateway answers but connections to the outside fail: the cause is on the host (see the host findings).",
	diagnose.CodeGuestAgentUnreachable:        "kvmnet cannot see inside the guest: guest-side causes are not diagnosed and guests fix cannot run.",
	diagnose.CodeGuestAgentMissingChannel:     "The domain has no way to reach a kvmnet agent: only the host's view of it is diagnosed.",
	diagnose.CodeKvmnetAgentMissing:           "Only qemu-guest-agent's view (interfaces, addresses) is available: no checks and no guest fix.",
	diagnose.CodeQemuGuestAgentMissing:        "No fallback view when the kvmnet agent is down, and the agent cannot be installed from the host.",
	diagnose.CodeSessionUsermodeNetwork:       "User-mode networking (slirp/passt) gives no bridge, lease or inbound connectivity: host-side diagnosis does not apply.",
	diagnose.CodeChannelSocketExposed:         "A non-root host user can talk to the guest's agent and, unless the agent is report-only, change the guest's network.",
}

// RenderRunbook renders docs/runbooks/<code>.md: Meaning, Impact, Diagnosis, Mitigation.
func RenderRunbook(ci diagnose.CodeInfo) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "<!-- Generated from controller/diagnose's catalogue by controller/exporter (go test ./controller/exporter -run TestRulesAndRunbooks -update); do not edit. -->\n")
	fmt.Fprintf(&b, "# %s\n\n", ci.Code)
	fmt.Fprintf(&b, "Scope: %s. Severity: up to %s", ci.Scope, ci.Severity)
	if ci.Grading != "" {
		fmt.Fprintf(&b, " (%s)", ci.Grading)
	}
	b.WriteString(".")
	if ci.Severity == diagnose.SeverityError {
		fmt.Fprintf(&b, " Alert: `%s` (packaging/prometheus/kvmnet.rules.yml), firing after %s.", AlertName(ci.Code), alertFor(ci))
	}
	b.WriteString("\n\n## Meaning\n\n")
	fmt.Fprintf(&b, "%s.", upperFirst(ci.Summary))
	if ci.CausedOnHost() && ci.Scope == diagnose.ScopeGuest {
		b.WriteString(" The cause is on the host: changing the guest cannot help.")
	}
	fmt.Fprintf(&b, "\n\nMetric: `kvmnet_finding{code=\"%s\"}` is 1 while the finding is active.\n", ci.Code)
	b.WriteString("\n## Impact\n\n" + impacts[ci.Code] + "\n")
	b.WriteString("\n## Diagnosis\n\n```sh\n")
	switch ci.Scope {
	case diagnose.ScopeGuest:
		b.WriteString("kvmnetctl guests status DOMAIN -o json   # the finding with its evidence (key=value facts)\n")
		b.WriteString("kvmnetctl host check                     # host causes behind guest findings\n")
	default:
		b.WriteString("kvmnetctl host check -o json             # the finding with its evidence (key=value facts)\n")
		b.WriteString("kvmnetctl guests status                  # which guests it affects\n")
	}
	b.WriteString("```\n\nOn another host: add `--ssh USER@HOST` to run the same command there.\n")
	b.WriteString("\n## Mitigation\n\n")
	if ci.FixCommand != "" {
		fmt.Fprintf(&b, "```sh\n%s --dry-run   # the plan, nothing changed\n%s\n```\n", ci.FixCommand, ci.FixCommand)
		switch {
		case ci.Fixer == diagnose.FixerHost:
			b.WriteString("\nThe command prints each host step, asks before running it, and checks again afterwards.\n")
		case ci.Fixer.Guest():
			b.WriteString("\nThe agent applies the change under a NetworkManager checkpoint that rolls back by itself unless the host's verification (lease, gateway, DNS, egress) passes.\n")
		}
	} else {
		b.WriteString("No kvmnetctl command changes this: the finding's `fix` field (`-o json`) names the exact manual step.\n")
	}
	if ci.FixLimits != "" {
		fmt.Fprintf(&b, "\nLimits: %s.\n", ci.FixLimits)
	}
	return b.Bytes()
}

// RenderRunbookIndex renders docs/runbooks/README.md: every code with its runbook, and the runbooks
// of the exporter-level alerts (kvmnet_up, kvmnet_guest_timed_out), which have no code.
func RenderRunbookIndex(cat []diagnose.CodeInfo) []byte {
	var b bytes.Buffer
	b.WriteString("<!-- Generated from controller/diagnose's catalogue by controller/exporter (go test ./controller/exporter -run TestRulesAndRunbooks -update); do not edit. -->\n")
	b.WriteString("# kvmnet runbooks\n\nOne runbook per diagnosis code. Codes whose findings can be error-level have a Prometheus alert\n" +
		"in `packaging/prometheus/kvmnet.rules.yml` (served by `kvmnetctl exporter`, see the README) that links here.\n\n")
	b.WriteString("| code | scope | severity | alert |\n|---|---|---|---|\n")
	for _, ci := range cat {
		alert := "-"
		if ci.Severity == diagnose.SeverityError {
			alert = "`" + AlertName(ci.Code) + "`"
		}
		fmt.Fprintf(&b, "| [`%s`](%s.md) | %s | %s | %s |\n", ci.Code, ci.Code, ci.Scope, ci.Severity, alert)
	}
	for _, m := range metaAlerts {
		fmt.Fprintf(&b, "\n## %s\n\n", m.name)
		fmt.Fprintf(&b, "Alert on `%s` for %s (severity %s).\n\n", m.expr, m.forDur, m.severity)
		b.WriteString(metaRunbooks[m.name])
	}
	return b.Bytes()
}

// metaRunbooks are the runbooks of the exporter-level alerts.
var metaRunbooks = map[string]string{
	"KvmnetExporterDown": "**Meaning.** The exporter answered but could not list libvirt's networks and domains within the scrape's\n" +
		"deadline (`kvmnet_up 0`); no finding of this host is exported, so no other kvmnet alert can fire for it.\n\n" +
		"**Impact.** Monitoring of this host's guest networking is blind.\n\n" +
		"**Diagnosis.** `kvmnetctl host check` on the host (or `kvmnetctl --ssh USER@HOST host check`) shows the\n" +
		"libvirt error; `systemctl status libvirtd kvmnetctl-exporter`; `kvmnet_scrape_duration_seconds` next to\n" +
		"`kvmnet_scrape_deadline_seconds` tells a slow libvirtd from a failing one.\n\n" +
		"**Mitigation.** Start or restart libvirtd (`systemctl restart libvirtd`); raise the job's `scrape_timeout`\n" +
		"when libvirtd is only slow.\n",
	"KvmnetGuestTimedOut": "**Meaning.** The guest's kvmnet agent (or its QEMU process) did not answer within the exporter's per-guest\n" +
		"timeout (`--guest-timeout`); the scrape still answered for every other guest.\n\n" +
		"**Impact.** Guest-side causes of this guest are not diagnosed; host-side findings still are.\n\n" +
		"**Diagnosis.** `kvmnetctl guests status DOMAIN` (its agent error); `virsh domstate DOMAIN --reason`; a\n" +
		"paused or stuck QEMU, or a guest under heavy load, are the usual causes.\n\n" +
		"**Mitigation.** Resume or restart the guest (`virsh resume DOMAIN`, `virsh reboot DOMAIN`); restart the\n" +
		"agent in the guest (`systemctl restart kvmnet-agent`).\n",
}
