package libvirt

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"

	golibvirt "libvirt.org/go/libvirt"

	"github.com/kvmnet/kvmnet/controller/libvirt/libvirtxml"
	"github.com/kvmnet/kvmnet/controller/snapshot"
)

// Source is an open libvirt connection that reads networks and domains into the snapshot model and
// performs kvmnet's libvirt mutations. It is safe for concurrent use (libvirt connections are).
type Source struct {
	conn *golibvirt.Connect
	uri  string
}

// Open connects to libvirt at uri ("" resolves like ResolveURI with no flag: LIBVIRT_DEFAULT_URI, then
// qemu:///system). A failure is a *ConnectError naming what to do next. The context bounds the
// connection attempt; libvirt cannot abandon it, so on timeout the attempt finishes in the background
// and its connection is closed.
func Open(ctx context.Context, uri string, getenv func(string) string) (*Source, error) {
	uri, _ = ResolveURI(uri, getenv)
	type res struct {
		c   *golibvirt.Connect
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := golibvirt.NewConnect(uri)
		ch <- res{c, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, &ConnectError{URI: uri, Hint: connectHint(uri, libvirtMessage(r.err)), Err: r.err}
		}
		s := &Source{conn: r.c, uri: uri}
		if actual, err := r.c.GetURI(); err == nil && actual != "" {
			s.uri = actual
		}
		return s, nil
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.c != nil {
				_, _ = r.c.Close()
			}
		}()
		return nil, &ConnectError{URI: uri, Err: ctx.Err(),
			Hint: "libvirtd did not answer in time: check that it is not hung (systemctl status libvirtd) or raise --timeout"}
	}
}

// Close closes the connection.
func (s *Source) Close() error {
	if _, err := s.conn.Close(); err != nil {
		return fmt.Errorf("close libvirt connection: %w", wrap(err))
	}
	return nil
}

// URI is the connection's URI as libvirt reports it (canonical form).
func (s *Source) URI() string { return s.uri }

// Session reports whether this is a per-user qemu:///session connection.
func (s *Source) Session() bool { return IsSession(s.uri) }

// Remote reports whether the URI names another host.
func (s *Source) Remote() bool { return IsRemote(s.uri) }

// call runs fn but returns when ctx ends, whichever is first (libvirt calls take no context; a hung
// daemon then leaves fn running in the background until libvirt's own keepalive fails it).
func call[T any](ctx context.Context, what string, fn func() (T, error)) (T, error) {
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, fmt.Errorf("%s: %w", what, err)
	}
	if ctx.Done() == nil {
		return fn()
	}
	type res struct {
		v   T
		err error
	}
	ch := make(chan res, 1)
	go func() {
		v, err := fn()
		ch <- res{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		return zero, fmt.Errorf("%s: libvirt did not answer in time: %w", what, ctx.Err())
	}
}

// Networks reads every network, active or not, sorted by name. A failure to list is returned with nil
// networks; problems with single networks (e.g. reading their leases) are returned joined, together
// with the networks that could be read — callers record them and carry on.
func (s *Source) Networks(ctx context.Context) ([]snapshot.Network, error) {
	type out struct {
		nets []snapshot.Network
		errs error
	}
	r, err := call(ctx, "read libvirt networks", func() (out, error) {
		list, err := s.conn.ListAllNetworks(0)
		if err != nil {
			return out{}, fmt.Errorf("list libvirt networks: %w", wrap(err))
		}
		var o out
		var errs []error
		for i := range list {
			n, err := readNetwork(&list[i])
			_ = list[i].Free()
			if err != nil {
				errs = append(errs, err)
			}
			if n.Name != "" {
				o.nets = append(o.nets, n)
			}
		}
		sort.Slice(o.nets, func(i, j int) bool { return o.nets[i].Name < o.nets[j].Name })
		o.errs = errors.Join(errs...)
		return o, nil
	})
	if err != nil {
		return nil, err
	}
	if r.nets == nil {
		r.nets = []snapshot.Network{}
	}
	return r.nets, r.errs
}

// Network reads one network by name; the error wraps ErrNotFound when it does not exist.
func (s *Source) Network(ctx context.Context, name string) (snapshot.Network, error) {
	return call(ctx, fmt.Sprintf("read libvirt network %q", name), func() (snapshot.Network, error) {
		n, err := s.conn.LookupNetworkByName(name)
		if err != nil {
			return snapshot.Network{}, fmt.Errorf("look up network %q: %w", name, wrap(err))
		}
		defer func() { _ = n.Free() }()
		return readNetwork(n)
	})
}

func readNetwork(n *golibvirt.Network) (snapshot.Network, error) {
	name, err := n.GetName()
	if err != nil {
		return snapshot.Network{}, fmt.Errorf("read network name: %w", wrap(err))
	}
	x, err := n.GetXMLDesc(0)
	if err != nil {
		return snapshot.Network{Name: name}, fmt.Errorf("read XML of network %q: %w", name, wrap(err))
	}
	net, err := libvirtxml.ParseNetworkXML(x)
	if err != nil {
		return snapshot.Network{Name: name}, fmt.Errorf("network %q: %w", name, err)
	}
	var errs []error
	if net.Active, err = n.IsActive(); err != nil {
		errs = append(errs, fmt.Errorf("read state of network %q: %w", name, wrap(err)))
	}
	if net.Autostart, err = n.GetAutostart(); err != nil {
		errs = append(errs, fmt.Errorf("read autostart of network %q: %w", name, wrap(err)))
	}
	if net.Persistent, err = n.IsPersistent(); err != nil {
		errs = append(errs, fmt.Errorf("read persistence of network %q: %w", name, wrap(err)))
	}
	if net.Bridge == "" && net.Active {
		if b, err := n.GetBridgeName(); err == nil {
			net.Bridge = b
		}
	}
	net.LeasesSupported = true
	leases, err := n.GetDHCPLeases()
	switch {
	case isCode(err, golibvirt.ERR_NO_SUPPORT):
		// test:///default and some remote drivers: no lease data, which is not an error.
		net.LeasesSupported = false
	case err != nil:
		errs = append(errs, fmt.Errorf("read leases of network %q: %w", name, wrap(err)))
	default:
		net.Leases = convertLeases(leases)
	}
	return net, errors.Join(errs...)
}

func convertLeases(in []golibvirt.NetworkDHCPLease) []snapshot.Lease {
	var out []snapshot.Lease
	for _, l := range in {
		lease := snapshot.Lease{MAC: snapshot.ParseMAC(l.Mac), IP: l.IPaddr, Prefix: int(l.Prefix), Family: 4,
			Hostname: l.Hostname, Expiry: l.ExpiryTime.UTC()}
		if l.Type == golibvirt.IP_ADDR_TYPE_IPV6 {
			lease.Family = 6
		} else if a, err := netip.ParseAddr(l.IPaddr); err == nil && a.Is6() && !a.Is4In6() {
			lease.Family = 6
		}
		out = append(out, lease)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].MAC != out[j].MAC {
			return out[i].MAC < out[j].MAC
		}
		return out[i].IP < out[j].IP
	})
	return out
}

// Domains reads every domain, running or not, sorted by name, from its live XML (inactive XML for
// domains that are off). Error semantics as for Networks.
func (s *Source) Domains(ctx context.Context) ([]snapshot.Domain, error) {
	type out struct {
		doms []snapshot.Domain
		errs error
	}
	r, err := call(ctx, "read libvirt domains", func() (out, error) {
		list, err := s.conn.ListAllDomains(0)
		if err != nil {
			return out{}, fmt.Errorf("list libvirt domains: %w", wrap(err))
		}
		var o out
		var errs []error
		for i := range list {
			d, err := readDomain(&list[i])
			_ = list[i].Free()
			if err != nil {
				errs = append(errs, err)
			}
			if d.Name != "" {
				o.doms = append(o.doms, d)
			}
		}
		sort.Slice(o.doms, func(i, j int) bool { return o.doms[i].Name < o.doms[j].Name })
		o.errs = errors.Join(errs...)
		return o, nil
	})
	if err != nil {
		return nil, err
	}
	if r.doms == nil {
		r.doms = []snapshot.Domain{}
	}
	return r.doms, r.errs
}

// Domain reads one domain by name; the error wraps ErrNotFound when it does not exist.
func (s *Source) Domain(ctx context.Context, name string) (snapshot.Domain, error) {
	return call(ctx, fmt.Sprintf("read libvirt domain %q", name), func() (snapshot.Domain, error) {
		d, err := s.conn.LookupDomainByName(name)
		if err != nil {
			return snapshot.Domain{}, fmt.Errorf("look up domain %q: %w", name, wrap(err))
		}
		defer func() { _ = d.Free() }()
		return readDomain(d)
	})
}

func readDomain(d *golibvirt.Domain) (snapshot.Domain, error) {
	name, err := d.GetName()
	if err != nil {
		return snapshot.Domain{}, fmt.Errorf("read domain name: %w", wrap(err))
	}
	x, err := d.GetXMLDesc(0)
	if err != nil {
		return snapshot.Domain{Name: name, NICs: []snapshot.DomainNIC{}}, fmt.Errorf("read XML of domain %q: %w", name, wrap(err))
	}
	dom, err := libvirtxml.ParseDomainXML(x)
	if err != nil {
		return snapshot.Domain{Name: name, NICs: []snapshot.DomainNIC{}}, fmt.Errorf("domain %q: %w", name, err)
	}
	var errs []error
	st, _, err := d.GetState()
	if err != nil {
		errs = append(errs, fmt.Errorf("read state of domain %q: %w", name, wrap(err)))
		dom.State = "unknown"
	} else {
		dom.State = StateName(st)
	}
	if dom.Persistent, err = d.IsPersistent(); err != nil {
		errs = append(errs, fmt.Errorf("read persistence of domain %q: %w", name, wrap(err)))
	}
	return dom, errors.Join(errs...)
}

// StateName names a domain state the way virsh does ("running", "shut off", ...).
func StateName(st golibvirt.DomainState) string {
	switch st {
	case golibvirt.DOMAIN_RUNNING:
		return "running"
	case golibvirt.DOMAIN_BLOCKED:
		return "idle"
	case golibvirt.DOMAIN_PAUSED:
		return "paused"
	case golibvirt.DOMAIN_SHUTDOWN:
		return "in shutdown"
	case golibvirt.DOMAIN_SHUTOFF:
		return "shut off"
	case golibvirt.DOMAIN_CRASHED:
		return "crashed"
	case golibvirt.DOMAIN_PMSUSPENDED:
		return "pmsuspended"
	default:
		return "no state"
	}
}

// Fill reads networks and domains into snap and sets URI and Session. Per-object problems are
// appended to snap.Errors; the returned error is only for what made the whole read fail (listing).
func (s *Source) Fill(ctx context.Context, snap *snapshot.Snapshot) error {
	snap.URI = s.uri
	snap.Session = s.Session()
	nets, err := s.Networks(ctx)
	if nets == nil {
		return err
	}
	snap.Networks = nets
	if err != nil {
		snap.Errors = append(snap.Errors, splitJoined(err)...)
	}
	doms, err := s.Domains(ctx)
	if doms == nil {
		return err
	}
	snap.Domains = doms
	if err != nil {
		snap.Errors = append(snap.Errors, splitJoined(err)...)
	}
	return nil
}

func splitJoined(err error) []string {
	if u, ok := err.(interface{ Unwrap() []error }); ok {
		var out []string
		for _, e := range u.Unwrap() {
			out = append(out, e.Error())
		}
		return out
	}
	return []string{err.Error()}
}

// NetworkXML returns a network's XML: the persistent definition when inactive is true, else the live
// one.
func (s *Source) NetworkXML(ctx context.Context, name string, inactive bool) (string, error) {
	return call(ctx, fmt.Sprintf("read XML of network %q", name), func() (string, error) {
		n, err := s.conn.LookupNetworkByName(name)
		if err != nil {
			return "", fmt.Errorf("look up network %q: %w", name, wrap(err))
		}
		defer func() { _ = n.Free() }()
		var flags golibvirt.NetworkXMLFlags
		if inactive {
			flags = golibvirt.NETWORK_XML_INACTIVE
		}
		x, err := n.GetXMLDesc(flags)
		if err != nil {
			return "", fmt.Errorf("read XML of network %q: %w", name, wrap(err))
		}
		return x, nil
	})
}

// DomainXML returns a domain's XML: the persistent definition when inactive is true (what takes effect
// at the next boot), else the live one.
func (s *Source) DomainXML(ctx context.Context, name string, inactive bool) (string, error) {
	return call(ctx, fmt.Sprintf("read XML of domain %q", name), func() (string, error) {
		d, err := s.conn.LookupDomainByName(name)
		if err != nil {
			return "", fmt.Errorf("look up domain %q: %w", name, wrap(err))
		}
		defer func() { _ = d.Free() }()
		var flags golibvirt.DomainXMLFlags
		if inactive {
			flags = golibvirt.DOMAIN_XML_INACTIVE
		}
		x, err := d.GetXMLDesc(flags)
		if err != nil {
			return "", fmt.Errorf("read XML of domain %q: %w", name, wrap(err))
		}
		return x, nil
	})
}

// DomainXMLSecure returns the persistent definition including secrets (graphics passwords:
// VIR_DOMAIN_XML_SECURE), so that redefining a domain after an edit does not drop them. It needs a
// read-write connection.
func (s *Source) DomainXMLSecure(ctx context.Context, name string) (string, error) {
	return call(ctx, fmt.Sprintf("read secure XML of domain %q", name), func() (string, error) {
		d, err := s.conn.LookupDomainByName(name)
		if err != nil {
			return "", fmt.Errorf("look up domain %q: %w", name, wrap(err))
		}
		defer func() { _ = d.Free() }()
		x, err := d.GetXMLDesc(golibvirt.DOMAIN_XML_INACTIVE | golibvirt.DOMAIN_XML_SECURE)
		if err != nil {
			return "", fmt.Errorf("read secure XML of domain %q: %w", name, wrap(err))
		}
		return x, nil
	})
}
