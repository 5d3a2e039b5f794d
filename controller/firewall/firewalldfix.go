package firewall

import (
	"fmt"
	"regexp"
	"strings"
)

// FirewallCmd builds firewall-cmd argument vectors for one firewalld. Bus, when set, is the D-Bus
// address that firewalld listens on (a private bus in tests and the lab); "" leaves firewall-cmd to
// its own default, the system bus of the host kvmnetctl runs on.
type FirewallCmd struct {
	// Bus is the D-Bus address of the firewalld to change ("" = the system bus).
	Bus string
}

// Argv returns firewall-cmd with args, through env(1) when a bus is given (argument vectors only:
// no shell between kvmnet and firewall-cmd).
func (c FirewallCmd) Argv(args ...string) []string {
	if c.Bus == "" {
		return append([]string{"firewall-cmd"}, args...)
	}
	return append([]string{"env", "DBUS_SYSTEM_BUS_ADDRESS=" + c.Bus, "firewall-cmd"}, args...)
}

var fwdNameRe = regexp.MustCompile(`^[A-Za-z0-9_+-]{1,18}$`)

// libvirtZoneSettings are libvirt-daemon-system 9.0's libvirt.xml: forwarded traffic accepted, the
// host reachable for DHCP, DHCPv6, DNS, SSH, TFTP and ICMP only.
// firewall-cmd takes several of one option per call, never two kinds (--add-service with
// --add-protocol is a usage error), hence two commands.
var (
	libvirtZoneServices  = []string{"--add-service=dhcp", "--add-service=dhcpv6", "--add-service=dns", "--add-service=ssh", "--add-service=tftp"}
	libvirtZoneProtocols = []string{"--add-protocol=icmp", "--add-protocol=ipv6-icmp"}
)

// FirewalldZoneFix returns the repair for firewalld_zone_missing: bridge bound to the libvirt zone
// at runtime and permanently, after creating the zone as libvirt ships it when cfg has none. The
// runtime binding is checked first, so applying twice changes nothing.
func FirewalldZoneFix(cfg *FirewalldConfig, bridge string, fc FirewallCmd) (Fix, error) {
	if err := checkIface("bridge", bridge); err != nil {
		return Fix{}, err
	}
	var cmds []Command
	if _, ok := cfg.Zone("libvirt"); !ok {
		perm := func(args ...string) []string { return fc.Argv(append([]string{"--permanent"}, args...)...) }
		cmds = append(cmds,
			// No Check: firewall-cmd answers a missing zone with exit 112, not 1; cfg says it is missing.
			Command{Argv: perm("--new-zone=libvirt"), Why: "firewalld has no libvirt zone: create it in /etc/firewalld/zones"},
			Command{Argv: perm("--zone=libvirt", "--set-target=ACCEPT"),
				Why: "libvirt's zone accepts forwarded guest traffic (its NAT and routing rules decide the rest)"},
			Command{Argv: perm(append([]string{"--zone=libvirt"}, libvirtZoneServices...)...),
				Why: "guests may reach the host for DHCP, DHCPv6, DNS, SSH and TFTP"},
			Command{Argv: perm(append([]string{"--zone=libvirt"}, libvirtZoneProtocols...)...),
				Why: "and ICMP, so ping and path MTU discovery work"},
			Command{Argv: perm("--zone=libvirt", `--add-rich-rule=rule priority="32767" reject`),
				Why: "everything else from guests to the host is rejected, as in libvirt's own zone"},
			Command{Argv: fc.Argv("--reload"), Why: "load the new zone into the running firewalld"},
		)
	}
	cmds = append(cmds,
		Command{Argv: fc.Argv("--zone=libvirt", "--change-interface="+bridge), Check: fc.Argv("--zone=libvirt", "--query-interface="+bridge),
			Why: bridge + " is in another zone at runtime: move it to libvirt's"},
		Command{Argv: fc.Argv("--permanent", "--zone=libvirt", "--change-interface="+bridge),
			Check: fc.Argv("--permanent", "--zone=libvirt", "--query-interface="+bridge),
			Why:   "keep the binding across firewalld reloads and restarts (libvirt binds it only when the network starts)"},
	)
	return Fix{
		Code:     "firewalld_zone_missing",
		Summary:  fmt.Sprintf("bind %s to firewalld's libvirt zone (runtime and permanent)", bridge),
		Commands: cmds,
		Persist:  "firewall-cmd --permanent writes /etc/firewalld/zones/libvirt.xml; it survives reboots and firewalld reloads",
	}, nil
}

// FirewalldPolicyFix returns the repair for firewalld_policy_reject_forward: a policy kvmnet-libvirt
// (kvmnet-routed for libvirt-routed; ingress the bridge's zone, egress ANY, target ACCEPT) at a priority lower
// than every policy that rejects forwarded traffic from that zone, so firewalld runs it first. The
// rejecting policies are left as they are. A reload makes it live; it drops runtime-only interface
// bindings, so the bridge is bound to its zone again afterwards.
func FirewalldPolicyFix(cfg *FirewalldConfig, bridge string, fc FirewallCmd) (Fix, error) {
	if err := checkIface("bridge", bridge); err != nil {
		return Fix{}, err
	}
	zone := cfg.ZoneOf(bridge)
	if zone != "libvirt" && zone != "libvirt-routed" {
		return Fix{}, fmt.Errorf("bridge %s is in firewalld zone %q, not libvirt's: bind it to the libvirt zone first (--only firewalld_zone_missing)", bridge, zone)
	}
	prio, by := 0, ""
	for _, p := range cfg.Policies {
		if !p.Rejects() || !p.Forwards() {
			continue
		}
		for _, z := range p.Ingress {
			if (z == zone || z == "ANY") && (by == "" || p.Priority < prio) {
				prio, by = p.Priority, p.Name
			}
		}
	}
	if by == "" {
		return Fix{}, fmt.Errorf("no firewalld policy rejects forwarded traffic from zone %s in the permanent configuration: change the runtime one by hand (firewall-cmd --get-active-policies)", zone)
	}
	prio = min(prio-1, -1)
	if prio < -32768 {
		return Fix{}, fmt.Errorf("policy %s already has the lowest priority (-32768): no policy can run before it; change it by hand", by)
	}
	// firewalld allows 18 characters: kvmnet-libvirt, kvmnet-routed.
	name := "kvmnet-" + strings.TrimPrefix(zone, "libvirt-")
	if !fwdNameRe.MatchString(name) {
		return Fix{}, fmt.Errorf("policy name %q is not one firewalld accepts", name)
	}
	pol := func(args ...string) []string {
		return fc.Argv(append([]string{"--permanent", "--policy=" + name}, args...)...)
	}
	var cmds []Command
	if _, ok := cfg.Policy(name); !ok {
		// No Check: a missing policy is exit 113 (INVALID_POLICY), not 1; cfg says it is missing.
		cmds = append(cmds, Command{Argv: fc.Argv("--permanent", "--new-policy="+name),
			Why: "a policy of kvmnet's own, so " + by + " stays as its owner wrote it"})
	}
	return Fix{
		Code:    "firewalld_policy_reject_forward",
		Summary: fmt.Sprintf("accept forwarded traffic from zone %s in policy %s (priority %d, before %s's %d)", zone, name, prio, by, prio+1),
		Commands: append(cmds, []Command{
			{Argv: pol("--add-ingress-zone=" + zone), Check: pol("--query-ingress-zone=" + zone), Why: "from the guests' zone"},
			{Argv: pol("--add-egress-zone=ANY"), Check: pol("--query-egress-zone=ANY"), Why: "to any zone (not the host: HOST is not in ANY)"},
			{Argv: pol("--set-target=ACCEPT"), Why: "accept what reaches it"},
			{Argv: pol(fmt.Sprintf("--set-priority=%d", prio)), Why: fmt.Sprintf("run before %s (priority %d)", by, prio+1)},
			{Argv: fc.Argv("--reload"), Why: "policies are changed permanently only: load it into the running firewalld"},
			{Argv: fc.Argv("--zone="+zone, "--change-interface="+bridge), Check: fc.Argv("--zone="+zone, "--query-interface="+bridge),
				Why: "a reload drops runtime-only interface bindings: put " + bridge + " back into zone " + zone},
		}...),
		Persist: "firewall-cmd --permanent writes /etc/firewalld/policies/" + name + ".xml; it survives reboots and firewalld reloads",
	}, nil
}
