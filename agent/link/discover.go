package link

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// Options configures a Discoverer.
type Options struct {
	// Handle is the netlink handle to query (netlink.NewHandle() for the agent's own namespace,
	// netlink.NewHandleAt(ns) in tests). Required.
	Handle *netlink.Handle
	// Namespace is the network namespace Handle belongs to, used for Watch subscriptions; nil means
	// the agent's own namespace.
	Namespace *netns.NsHandle
	// SysRoot is the directory under which sys/class/net is read for drivers and PCI paths ("/" in
	// production). Required.
	SysRoot string
	// Logger receives subscription errors. Default: discard.
	Logger *slog.Logger
	// Now returns the time stamped on events. Default time.Now.
	Now func() time.Time
}

// Discoverer reads interfaces and routes of one network namespace.
type Discoverer struct {
	h       *netlink.Handle
	ns      *netns.NsHandle
	sysRoot string
	log     *slog.Logger
	now     func() time.Time
}

// New returns a Discoverer for opts.
func New(opts Options) (*Discoverer, error) {
	if opts.Handle == nil {
		return nil, errors.New("link: a netlink handle is required")
	}
	if opts.SysRoot == "" {
		return nil, errors.New("link: a sysfs root directory is required (\"/\" in production)")
	}
	d := &Discoverer{h: opts.Handle, ns: opts.Namespace, sysRoot: opts.SysRoot, log: opts.Logger, now: opts.Now}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.now == nil {
		d.now = time.Now
	}
	return d, nil
}

// dumpRetries bounds retries of netlink dumps the kernel reports as interrupted (a change happened
// while dumping).
const dumpRetries = 5

func retryDump[T any](f func() (T, error)) (T, error) {
	var v T
	var err error
	for range dumpRetries {
		v, err = f()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return v, err
		}
	}
	return v, err
}

// Snapshot returns every non-loopback interface (with default-route flags set from the routes)
// and the main routing table, IPv4 and IPv6.
func (d *Discoverer) Snapshot() ([]*kvmnetv1.Interface, []*kvmnetv1.Route, error) {
	links, err := retryDump(d.h.LinkList)
	if err != nil {
		return nil, nil, fmt.Errorf("list links over netlink: %w", err)
	}
	names := make(map[int]string, len(links))
	for _, l := range links {
		names[l.Attrs().Index] = DisplayName(l.Attrs().Name)
	}
	routes, err := d.routes(names)
	if err != nil {
		return nil, nil, err
	}
	// One address dump for all links (AddrList with a link dumps every address and filters).
	all, err := retryDump(func() ([]netlink.Addr, error) { return d.h.AddrList(nil, netlink.FAMILY_ALL) })
	if err != nil {
		return nil, nil, fmt.Errorf("list addresses over netlink: %w", err)
	}
	addrs := make(map[int][]netlink.Addr, len(links))
	for _, ad := range all {
		addrs[ad.LinkIndex] = append(addrs[ad.LinkIndex], ad)
	}
	var out []*kvmnetv1.Interface
	for _, l := range links {
		if isLoopback(l) {
			continue
		}
		in := d.convertLink(l, addrs[l.Attrs().Index])
		for _, r := range routes {
			if r.Destination == "default" && r.Interface == in.Name {
				if r.Family == 4 {
					in.DefaultRouteV4 = true
				} else {
					in.DefaultRouteV6 = true
				}
			}
		}
		out = append(out, in)
	}
	return out, routes, nil
}

// Interfaces returns every non-loopback interface (see Snapshot).
func (d *Discoverer) Interfaces() ([]*kvmnetv1.Interface, error) {
	ifs, _, err := d.Snapshot()
	return ifs, err
}

// Routes returns the main routing table, IPv4 then IPv6.
func (d *Discoverer) Routes() ([]*kvmnetv1.Route, error) {
	links, err := retryDump(d.h.LinkList)
	if err != nil {
		return nil, fmt.Errorf("list links over netlink: %w", err)
	}
	names := make(map[int]string, len(links))
	for _, l := range links {
		names[l.Attrs().Index] = DisplayName(l.Attrs().Name)
	}
	return d.routes(names)
}

func (d *Discoverer) routes(names map[int]string) ([]*kvmnetv1.Route, error) {
	var out []*kvmnetv1.Route
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rs, err := retryDump(func() ([]netlink.Route, error) {
			return d.h.RouteListFiltered(fam, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
		})
		if err != nil {
			return nil, fmt.Errorf("list routes over netlink: %w", err)
		}
		for _, r := range rs {
			out = append(out, convertRoute(r, fam, names)...)
		}
	}
	return out, nil
}

// convertRoute turns one kernel route into one Route per next hop; non-unicast routes (multicast,
// local, blackhole...) are left out.
func convertRoute(r netlink.Route, family int, names map[int]string) []*kvmnetv1.Route {
	if r.Type != unix.RTN_UNICAST {
		return nil
	}
	fam := uint32(4)
	if family == netlink.FAMILY_V6 {
		fam = 6
	}
	dst := "default"
	if r.Dst != nil {
		if ones, _ := r.Dst.Mask.Size(); ones != 0 || !r.Dst.IP.IsUnspecified() {
			dst = r.Dst.String()
		}
	}
	mk := func(gw net.IP, idx int) *kvmnetv1.Route {
		out := &kvmnetv1.Route{
			Family:      fam,
			Destination: dst,
			Interface:   names[idx],
			Metric:      uint32(r.Priority),
			Protocol:    r.Protocol.String(),
		}
		if gw != nil {
			out.Gateway = gw.String()
		}
		return out
	}
	if len(r.MultiPath) > 0 {
		var out []*kvmnetv1.Route
		for _, nh := range r.MultiPath {
			out = append(out, mk(nh.Gw, nh.LinkIndex))
		}
		return out
	}
	return []*kvmnetv1.Route{mk(r.Gw, r.LinkIndex)}
}

func isLoopback(l netlink.Link) bool {
	return l.Attrs().RawFlags&unix.IFF_LOOPBACK != 0
}

// infiniteLifetime is the kernel's "forever" address lifetime.
const infiniteLifetime = 0xffffffff

// convertLink turns a link and its addresses (kernel order) into an Interface.
func (d *Discoverer) convertLink(l netlink.Link, addrs []netlink.Addr) *kvmnetv1.Interface {
	a := l.Attrs()
	driver, pci := deviceInfo(d.sysRoot, a.Name)
	in := &kvmnetv1.Interface{
		Name:      DisplayName(a.Name),
		Mac:       a.HardwareAddr.String(),
		Kind:      l.Type(),
		Driver:    driver,
		PciPath:   pci,
		OperState: a.OperState.String(),
		Carrier:   a.RawFlags&unix.IFF_LOWER_UP != 0,
		Mtu:       uint32(a.MTU),
	}
	for _, ad := range addrs {
		if ad.IPNet == nil {
			continue
		}
		if ad.IP.To4() != nil {
			in.Ipv4 = append(in.Ipv4, ad.IPNet.String())
			// Addresses with a finite lifetime and no "permanent" flag came from DHCP (NM and
			// networkd set the lease time as valid_lft).
			if ad.Flags&unix.IFA_F_PERMANENT == 0 && ad.ValidLft > 0 && uint32(ad.ValidLft) != infiniteLifetime {
				in.Ipv4Dynamic = true
			}
		} else {
			in.Ipv6 = append(in.Ipv6, ad.IPNet.String())
		}
	}
	return in
}
