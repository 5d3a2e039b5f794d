package diagnose

import (
	"fmt"
	"strings"

	"github.com/kvmnet/kvmnet/controller/snapshot"
)

// libvirtZones are the zones libvirt puts its bridges in: libvirt (NAT, isolated) and
// libvirt-routed (routed networks, libvirt >= 8.10 with firewalld >= 0.9).
var libvirtZones = map[string]bool{"libvirt": true, "libvirt-routed": true}

// firewalld judges firewalld's zones: firewalld_zone_missing when firewalld runs without libvirt's
// zone (guests' bridges then fall into the default zone, which rejects their DHCP and DNS), or when a
// libvirt bridge is in another zone whose rules reject the network's evaluated flows.
func (d *diag) firewalld(fw snapshot.Firewall) {
	if !fw.Firewalld.Running {
		return
	}
	nets := d.activeNets(servedByLibvirt)
	if len(nets) == 0 {
		return
	}
	var hit []*snapshot.Network
	var bridges, zones, placed, blocked []string
	for _, n := range nets {
		zone, known := fw.Firewalld.InterfaceZones[n.Bridge]
		flow := firewalldZoneBlock(fw, n.Name)
		switch {
		case !fw.Firewalld.LibvirtZone:
		case known && !libvirtZones[zone] && flow != nil:
		default:
			continue
		}
		hit = append(hit, n)
		bridges = append(bridges, n.Bridge)
		if known {
			zones = append(zones, n.Bridge+":"+zone)
			placed = append(placed, fmt.Sprintf("%s (network %s) is in zone %s", n.Bridge, n.Name, zone))
		}
		if flow != nil {
			blocked = append(blocked, fmt.Sprintf("%s %s in zone %s (%s)", strings.ToUpper(flow.Kind), flow.Verdict, flow.FirewalldZone, flow.Rule))
		}
	}
	if len(hit) == 0 {
		return
	}
	if d.fwdZone == nil {
		d.fwdZone = map[string]bool{}
	}
	for _, n := range hit {
		d.fwdZone[n.Name] = true
		d.affectNet(n.Name, CodeFirewalldZoneMissing)
	}
	where := fmt.Sprintf("the bridges of %s are in the default zone %s", strings.Join(names(hit), ", "), orNone(fw.Firewalld.DefaultZone))
	if len(placed) > 0 {
		where = strings.Join(placed, ", ")
	}
	summary := fmt.Sprintf("firewalld runs but has no \"libvirt\" zone: %s, which rejects guests' DHCP and DNS", where)
	if fw.Firewalld.LibvirtZone {
		summary = fmt.Sprintf("firewalld has a libvirt bridge out of libvirt's zone: %s", where)
	}
	if len(blocked) > 0 {
		summary += ": " + strings.Join(blocked, "; ")
	}
	create := ""
	if !fw.Firewalld.LibvirtZone {
		create = "creates libvirt's zone as libvirt ships it (ACCEPT forwards, DHCP/DNS/SSH/TFTP/ICMP to the host, everything else to the host rejected), reloads firewalld, then "
	}
	d.addHost(Finding{
		Code: CodeFirewalldZoneMissing, Severity: SeverityError, Subject: subjectHost,
		Summary: summary,
		Fix: fmt.Sprintf("kvmnetctl host fix --only %s (%sbinds %s to the libvirt zone with firewall-cmd, runtime and permanent; "+
			"trade-off: the permanent binding stays if the network is later removed)", CodeFirewalldZoneMissing, create, strings.Join(bridges, ", ")),
		Evidence: []string{ev("firewalld_running", true), ev("libvirt_zone", fw.Firewalld.LibvirtZone), ev("libvirt_zone_file", fw.Firewalld.LibvirtZoneFile),
			ev("default_zone", fw.Firewalld.DefaultZone), ev("bridge_zones", zones), ev("blocked", blocked), ev("networks", names(hit)), ev("bridges", bridges)},
	})
}

// firewalldZoneBlock returns the network's first blocked flow decided in a firewalld zone chain:
// DHCP or DNS to the host first (what the zone is for), then egress.
func firewalldZoneBlock(fw snapshot.Firewall, network string) *snapshot.Flow {
	var egress *snapshot.Flow
	for i := range fw.Flows {
		f := &fw.Flows[i]
		if f.Network != network || f.Bridged || !blocked(f.Verdict) || f.FirewalldZone == "" {
			continue
		}
		if f.Kind == "dhcp" || f.Kind == "dns" {
			return f
		}
		if egress == nil {
			egress = f
		}
	}
	return egress
}

// firewalldPolicyReject fills fd for an egress flow a firewalld policy rejected.
func (d *diag) firewalldPolicyReject(n *snapshot.Network, f snapshot.Flow, fw snapshot.Firewall, fd *Finding) {
	zone := orNone(fw.Firewalld.InterfaceZones[n.Bridge])
	pol := snapshot.FirewalldPolicy{Name: f.FirewalldPolicy}
	for _, p := range fw.Firewalld.Policies {
		if p.Name == f.FirewalldPolicy {
			pol = p
		}
	}
	fd.Code = CodeFirewalldPolicyRejectForward
	fd.Summary = fmt.Sprintf("firewalld policy %s (target %s, priority %d, ingress %s, egress %s) %ss new guest traffic from %s (zone %s, %s) to %s: %s",
		pol.Name, orNone(pol.Target), pol.Priority, orNone(strings.Join(pol.Ingress, ",")), orNone(strings.Join(pol.Egress, ",")),
		f.Verdict, n.Bridge, zone, n.Subnet(), d.uplink(), f.Rule)
	fd.Evidence = append(fd.Evidence, ev("firewalld_policy", pol.Name), ev("policy_target", pol.Target), ev("policy_priority", pol.Priority),
		ev("policy_file", pol.File), ev("bridge_zone", zone))
	if !libvirtZones[zone] {
		fd.Fix = fmt.Sprintf("the bridge %s is in zone %s, not libvirt's: bind it to the libvirt zone first (kvmnetctl host fix --only %s), or change policy %s by hand",
			n.Bridge, zone, CodeFirewalldZoneMissing, pol.Name)
		return
	}
	fd.Fix = fmt.Sprintf("kvmnetctl host fix --only %s (adds policy kvmnet-%s: ingress %s, egress ANY, target ACCEPT, at a priority before %s's, "+
		"then reloads firewalld and re-binds %s; trade-off: %s no longer filters forwarded traffic from zone %s, the rest of its traffic is unchanged)",
		CodeFirewalldPolicyRejectForward, strings.TrimPrefix(zone, "libvirt-"), zone, pol.Name, n.Bridge, pol.Name, zone)
}
