package hostnet

import (
	"errors"
	"fmt"
	"net"
	"sort"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/kvmnet/kvmnet/controller/snapshot"
)

// Bridges lists the namespace's Linux bridges with state, addresses, ports, STP and neighbours,
// sorted by name.
func (r *Reader) Bridges() ([]snapshot.Bridge, error) {
	links, err := r.cfg.Handle.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	var out []snapshot.Bridge
	var errs []error
	for _, l := range links {
		if l.Type() != "bridge" {
			continue
		}
		a := l.Attrs()
		b := snapshot.Bridge{Name: a.Name, OperState: a.OperState.String(), AdminUp: a.Flags&net.FlagUp != 0,
			Addresses: []string{}, Ports: []string{}}
		addrs, err := r.cfg.Handle.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			errs = append(errs, fmt.Errorf("addresses of bridge %s: %w", a.Name, err))
		}
		for _, ad := range addrs {
			b.Addresses = append(b.Addresses, ad.IPNet.String())
		}
		for _, p := range links {
			if p.Attrs().MasterIndex == a.Index {
				b.Ports = append(b.Ports, p.Attrs().Name)
			}
		}
		sort.Strings(b.Ports)
		if b.PortInfo, err = r.portInfo(a.Index, links); err != nil {
			errs = append(errs, fmt.Errorf("ports of bridge %s: %w", a.Name, err))
		}
		sort.Slice(b.PortInfo, func(i, j int) bool { return b.PortInfo[i].Name < b.PortInfo[j].Name })
		if b.STP, err = r.bridgeSTP(a.Index); err != nil {
			errs = append(errs, fmt.Errorf("STP state of bridge %s: %w", a.Name, err))
		}
		if b.Neighbors, err = r.Neighbors(a.Index); err != nil {
			errs = append(errs, fmt.Errorf("neighbours on bridge %s: %w", a.Name, err))
		}
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	if out == nil {
		out = []snapshot.Bridge{}
	}
	return out, errors.Join(errs...)
}

// bridgeSTP reads IFLA_BR_STP_STATE (netlink's library does not decode it) with a RTM_GETLINK for
// the bridge's index on a socket in the Reader's namespace. sysfs is avoided on purpose: it shows the
// namespace it was mounted in, not the one being read.
func (r *Reader) bridgeSTP(index int) (bool, error) {
	msgs, err := r.getLink(index)
	if err != nil {
		return false, err
	}
	for _, m := range msgs {
		if stp, ok := parseSTP(m); ok {
			return stp, nil
		}
	}
	return false, fmt.Errorf("no IFLA_BR_STP_STATE for index %d", index)
}

// parseSTP finds IFLA_LINKINFO/IFLA_INFO_DATA/IFLA_BR_STP_STATE in one RTM_NEWLINK message.
func parseSTP(m []byte) (bool, bool) {
	if len(m) < unix.SizeofIfInfomsg {
		return false, false
	}
	attrs, err := parseAttrs(m[unix.SizeofIfInfomsg:])
	if err != nil {
		return false, false
	}
	for _, a := range attrs {
		if a.typ != unix.IFLA_LINKINFO {
			continue
		}
		info, err := parseAttrs(a.val)
		if err != nil {
			return false, false
		}
		for _, i := range info {
			if i.typ != nl.IFLA_INFO_DATA {
				continue
			}
			data, err := parseAttrs(i.val)
			if err != nil {
				return false, false
			}
			for _, d := range data {
				if d.typ == nl.IFLA_BR_STP_STATE && len(d.val) >= 4 {
					return nl.NativeEndian().Uint32(d.val[:4]) != 0, true
				}
			}
		}
	}
	return false, false
}

// Neighbors returns the IPv4 (ARP) and IPv6 (NDP) entries on link index, skipping NOARP entries
// (multicast, broadcast) and entries without a MAC other than failed/incomplete ones.
func (r *Reader) Neighbors(index int) ([]snapshot.Neighbor, error) {
	var out []snapshot.Neighbor
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		ns, err := r.cfg.Handle.NeighList(index, fam)
		if err != nil {
			return nil, err
		}
		for _, n := range ns {
			if n.State&netlink.NUD_NOARP != 0 || n.IP == nil {
				continue
			}
			out = append(out, snapshot.Neighbor{IP: n.IP.String(), MAC: snapshot.ParseMAC(n.HardwareAddr.String()),
				State: NeighState(n.State)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].IP < out[j].IP })
	return out, nil
}

// NeighState names a NUD_* state the way `ip neigh` does (lower case).
func NeighState(s int) string {
	names := []struct {
		bit  int
		name string
	}{
		{netlink.NUD_PERMANENT, "permanent"}, {netlink.NUD_REACHABLE, "reachable"}, {netlink.NUD_STALE, "stale"},
		{netlink.NUD_DELAY, "delay"}, {netlink.NUD_PROBE, "probe"}, {netlink.NUD_FAILED, "failed"},
		{netlink.NUD_INCOMPLETE, "incomplete"}, {netlink.NUD_NOARP, "noarp"},
	}
	for _, n := range names {
		if s&n.bit != 0 {
			return n.name
		}
	}
	return "none"
}

// Uplink returns the interface of the IPv4 default route with the lowest metric in the main table, ""
// when there is none.
func (r *Reader) Uplink() (string, error) {
	rt, err := r.defaultRoute(netlink.FAMILY_V4)
	if err != nil || rt == nil {
		return "", err
	}
	idx := rt.LinkIndex
	if idx == 0 && len(rt.MultiPath) > 0 {
		idx = rt.MultiPath[0].LinkIndex
	}
	l, err := r.cfg.Handle.LinkByIndex(idx)
	if err != nil {
		return "", fmt.Errorf("uplink: link %d of the default route: %w", idx, err)
	}
	return l.Attrs().Name, nil
}

// IPv6DefaultRoute reports whether the namespace has an IPv6 default route in the main table.
func (r *Reader) IPv6DefaultRoute() (bool, error) {
	rt, err := r.defaultRoute(netlink.FAMILY_V6)
	return rt != nil, err
}

func (r *Reader) defaultRoute(family int) (*netlink.Route, error) {
	routes, err := r.cfg.Handle.RouteListFiltered(family, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	var best *netlink.Route
	for i := range routes {
		rt := &routes[i]
		if !isDefault(rt) || rt.Type == unix.RTN_UNREACHABLE || rt.Type == unix.RTN_BLACKHOLE || rt.Type == unix.RTN_PROHIBIT {
			continue
		}
		if best == nil || rt.Priority < best.Priority {
			best = rt
		}
	}
	return best, nil
}

func isDefault(rt *netlink.Route) bool {
	if rt.Dst == nil {
		return true
	}
	ones, _ := rt.Dst.Mask.Size()
	return ones == 0
}

// HostPrefixes returns every address (CIDR) and non-default route destination in the namespace: what a
// new libvirt subnet must not overlap (see libvirtxml.SubnetFree).
func (r *Reader) HostPrefixes() ([]string, error) {
	addrs, err := r.cfg.Handle.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	var out []string
	for _, a := range addrs {
		if a.IP.IsLoopback() || a.IP.IsLinkLocalUnicast() {
			continue
		}
		out = append(out, a.IPNet.String())
	}
	routes, err := r.cfg.Handle.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	for _, rt := range routes {
		if isDefault(&rt) || rt.Dst.IP.IsLinkLocalUnicast() || rt.Dst.IP.IsLinkLocalMulticast() {
			continue
		}
		out = append(out, rt.Dst.String())
	}
	sort.Strings(out)
	return out, nil
}
