package collect

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/kvmnet/kvmnet/controller/checks"
	"github.com/kvmnet/kvmnet/controller/snapshot"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
	"google.golang.org/grpc"
)

// LibvirtSource reads libvirt's networks and domains. *controller/libvirt.Source satisfies it.
// Networks and Domains may return partial results together with an error (problems with single
// objects); a nil slice with an error means the listing itself failed.
type LibvirtSource interface {
	// URI is the connection URI actually in use.
	URI() string
	// Session reports a qemu:///session connection.
	Session() bool
	// Remote reports a connection to another host (host facts are then not read locally).
	Remote() bool
	// Networks reads every network with its leases.
	Networks(ctx context.Context) ([]snapshot.Network, error)
	// Domains reads every domain with its NICs and channels.
	Domains(ctx context.Context) ([]snapshot.Domain, error)
}

// HostNetSource reads the host's bridges, neighbours, uplink, ip_forward and each network's dnsmasq.
type HostNetSource interface {
	Host(ctx context.Context, nets []snapshot.Network) (snapshot.Host, error)
}

// HostNetFunc adapts a function to HostNetSource.
type HostNetFunc func(ctx context.Context, nets []snapshot.Network) (snapshot.Host, error)

// Host calls f.
func (f HostNetFunc) Host(ctx context.Context, nets []snapshot.Network) (snapshot.Host, error) {
	return f(ctx, nets)
}

// FirewallInput is what the firewall's flows are evaluated over.
type FirewallInput struct {
	// Networks are libvirt's networks (NAT/routed flows per network).
	Networks []snapshot.Network
	// Uplink is the host's default-route interface ("" when unknown).
	Uplink string
	// Host holds the bridges and br_netfilter's sysctls (bridged guests' flows).
	Host snapshot.Host
	// Domains are libvirt's domains (bridged NICs and their taps).
	Domains []snapshot.Domain
}

// FirewallSource reads the rule sets and evaluates guest flows: each network's leaving through the
// uplink, and bridged guests' through br_netfilter (controller/firewall: Reader.Read, State.Snapshot,
// State.BridgedFlows).
type FirewallSource interface {
	Firewall(ctx context.Context, in FirewallInput) (snapshot.Firewall, error)
}

// FirewallFunc adapts a function to FirewallSource.
type FirewallFunc func(ctx context.Context, in FirewallInput) (snapshot.Firewall, error)

// Firewall calls f.
func (f FirewallFunc) Firewall(ctx context.Context, in FirewallInput) (snapshot.Firewall, error) {
	return f(ctx, in)
}

// ChannelAccessSource sets Domain.ChannelAccess for the domains whose kvmnet channel socket it can
// inspect (controller/sockaccess.Inspector satisfies it).
type ChannelAccessSource interface {
	FillChannelAccess(doms []snapshot.Domain) error
}

// Agent is the part of a connected agent client collect uses. *controller/agentclient.Client
// satisfies it.
type Agent interface {
	GetState(ctx context.Context, in *kvmnetv1.GetStateRequest, opts ...grpc.CallOption) (*kvmnetv1.GuestState, error)
	RunChecks(ctx context.Context, in *kvmnetv1.RunChecksRequest, opts ...grpc.CallOption) (*kvmnetv1.RunChecksResponse, error)
	Close() error
}

// AgentDialer connects to an agent address ("vsock:CID:PORT", "serial:/path", "unix:/path").
type AgentDialer interface {
	DialAgent(ctx context.Context, addr snapshot.AgentAddr) (Agent, error)
}

// DialFunc adapts a function to AgentDialer.
type DialFunc func(ctx context.Context, addr snapshot.AgentAddr) (Agent, error)

// DialAgent calls f.
func (f DialFunc) DialAgent(ctx context.Context, addr snapshot.AgentAddr) (Agent, error) {
	return f(ctx, addr)
}

// Sources are the seams collect reads through. Only Libvirt is required; a nil source leaves its
// part of the snapshot unread (Host.Read / Firewall.Read false, no agent views).
type Sources struct {
	Libvirt  LibvirtSource
	HostNet  HostNetSource
	Firewall FirewallSource
	Access   ChannelAccessSource
	Agents   AgentDialer
	// QGA, when set, is asked for the view of running guests whose kvmnet agent does not answer.
	QGA QGASource
}

// DefaultTimeout is the deadline for the guest phase (and each host source) when Options gives none.
const DefaultTimeout = 10 * time.Second

// DefaultDisconnectedGrace is how long a channel libvirt reports as disconnected may take to come back
// (the agent reopens its port after every host session: about 1 s under TCG in the lab).
const DefaultDisconnectedGrace = 3 * time.Second

// AgentVsockPort is the vsock port the agent listens on.
const AgentVsockPort = 7531

// Options configure a Collector.
type Options struct {
	// Timeout bounds libvirt enumeration, and then — once — the host sources and all guests together:
	// every guest gets the same deadline, so a hung guest costs at most Timeout. Default 10 s.
	Timeout time.Duration
	// Checks runs RunChecks on every reachable guest (see checks.Status).
	Checks bool
	// Targets of the checks.
	Targets checks.Targets
	// Workers bounds how many guests are queried at once (0: all at once). With a bound every guest
	// gets its own Timeout from when its query starts, all within the caller's context; a guest still
	// waiting when that context ends is reported TimedOut without being dialled.
	Workers int
	// Domains restricts agent queries to these domains (all domains are still listed). Empty: all.
	Domains []string
	// DialDisconnected dials virtio-serial channels libvirt reports as disconnected (nothing in the
	// guest has the port open) with the full Timeout. Default false: such a channel gets only
	// DisconnectedGrace to come back (the agent reopens its port after each host session).
	DialDisconnected bool
	// DisconnectedGrace bounds dialing a channel libvirt reports as disconnected. Default 3 s.
	DisconnectedGrace time.Duration
	// Now is the clock for TakenAt (default time.Now).
	Now func() time.Time
	// Logger receives per-source and per-guest debug lines (default: discard).
	Logger *slog.Logger
}

// Collector builds snapshots.
type Collector struct {
	src  Sources
	opts Options
}

// New returns a Collector. It fails when no libvirt source is given.
func New(src Sources, opts Options) (*Collector, error) {
	if src.Libvirt == nil {
		return nil, errors.New("collect: a libvirt source is required")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.DisconnectedGrace <= 0 {
		opts.DisconnectedGrace = DefaultDisconnectedGrace
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	opts.Targets = opts.Targets.WithDefaults()
	return &Collector{src: src, opts: opts}, nil
}

// bounded runs fn and returns its result, or ctx's error as soon as ctx ends even if fn does not
// return (an adapter that ignores its context cannot stall the collection; its late result is
// dropped).
func bounded[T any](ctx context.Context, fn func(context.Context) (T, error)) (T, error) {
	type res struct {
		v   T
		err error
	}
	ch := make(chan res, 1)
	go func() {
		v, err := fn(ctx)
		ch <- res{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// Collect reads everything. The error is only for what makes the snapshot meaningless (libvirt could
// not be listed: the CLI exits 2); every other problem is recorded in Snapshot.Errors or in the
// part it concerns (Guest.Error, Firewall.Error).
func (c *Collector) Collect(ctx context.Context) (snapshot.Snapshot, error) {
	lv := c.src.Libvirt
	snap := snapshot.Snapshot{URI: lv.URI(), Session: lv.Session(), TakenAt: c.opts.Now()}
	var errsMu sync.Mutex
	addErr := func(err error) {
		if err == nil {
			return
		}
		errsMu.Lock()
		defer errsMu.Unlock()
		if u, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range u.Unwrap() {
				snap.Errors = append(snap.Errors, e.Error())
			}
			return
		}
		snap.Errors = append(snap.Errors, err.Error())
	}

	// Phase 1: libvirt enumeration (networks and domains concurrently).
	lctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	var wg sync.WaitGroup
	var nets []snapshot.Network
	var doms []snapshot.Domain
	var netErr, domErr error
	wg.Add(2)
	go func() { defer wg.Done(); nets, netErr = bounded(lctx, lv.Networks) }()
	go func() { defer wg.Done(); doms, domErr = bounded(lctx, lv.Domains) }()
	wg.Wait()
	cancel()
	if nets == nil && netErr != nil {
		return snap, fmt.Errorf("read libvirt networks from %s: %w", lv.URI(), netErr)
	}
	if doms == nil && domErr != nil {
		return snap, fmt.Errorf("read libvirt domains from %s: %w", lv.URI(), domErr)
	}
	addErr(netErr)
	addErr(domErr)
	if nets == nil {
		nets = []snapshot.Network{}
	}
	if doms == nil {
		doms = []snapshot.Domain{}
	}
	snap.Networks, snap.Domains = nets, doms

	// Phase 2: host, firewall, channel access and every guest, all under one deadline.
	pctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	guests := make([]snapshot.Guest, len(doms))
	var sem chan struct{}
	if c.opts.Workers > 0 {
		sem = make(chan struct{}, c.opts.Workers)
	}
	for i := range doms {
		wg.Add(1)
		go func(i int, dom snapshot.Domain) {
			defer wg.Done()
			if sem == nil {
				guests[i] = c.guest(pctx, dom, nets)
				return
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				guests[i] = c.queuedOut(dom, ctx.Err())
				return
			}
			defer func() { <-sem }()
			if err := ctx.Err(); err != nil { // both were ready and select chose the slot
				guests[i] = c.queuedOut(dom, err)
				return
			}
			gctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
			defer cancel()
			guests[i] = c.guest(gctx, dom, nets)
		}(i, doms[i])
	}
	local := !lv.Remote()
	wg.Add(1)
	go func() {
		defer wg.Done()
		snap.Host, snap.Firewall = c.host(pctx, nets, doms, local, addErr)
	}()
	var access []snapshot.Domain
	if c.src.Access != nil && local {
		// On a copy: the guest goroutines read the domains concurrently.
		access = slices.Clone(doms)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := bounded(pctx, func(context.Context) (struct{}, error) {
				return struct{}{}, c.src.Access.FillChannelAccess(access)
			})
			if err != nil {
				addErr(fmt.Errorf("channel socket access: %w", err))
			}
		}()
	}
	wg.Wait()
	if access != nil {
		for i := range doms {
			doms[i].ChannelAccess = access[i].ChannelAccess
		}
	}
	snap.Guests = guests
	return snap, nil
}

// host reads the host network and then the firewall (which needs the uplink).
func (c *Collector) host(ctx context.Context, nets []snapshot.Network, doms []snapshot.Domain, local bool, addErr func(error)) (snapshot.Host, snapshot.Firewall) {
	var h snapshot.Host
	fw := snapshot.Firewall{Error: "no firewall source: the libvirt connection is not to this host (remote or test driver)"}
	if !local {
		fw.Error = "remote libvirt connection: the host's firewall is not read from here"
		return h, fw
	}
	if c.src.HostNet != nil {
		got, err := bounded(ctx, func(ctx context.Context) (snapshot.Host, error) { return c.src.HostNet.Host(ctx, nets) })
		switch {
		case err == nil:
			h = got
			h.Read = true
		case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
			addErr(fmt.Errorf("host network: %w", err))
		default:
			h = got // partial: the source says what it could read (Read, IPForwardKnown)
			addErr(fmt.Errorf("host network: %w", err))
		}
		c.opts.Logger.Debug("host network read", "err", err, "bridges", len(h.Bridges))
	}
	if c.src.Firewall != nil {
		got, err := bounded(ctx, func(ctx context.Context) (snapshot.Firewall, error) {
			return c.src.Firewall.Firewall(ctx, FirewallInput{Networks: nets, Uplink: h.Uplink, Host: h, Domains: doms})
		})
		if err != nil {
			fw = snapshot.Firewall{Read: false, Error: err.Error()}
			addErr(fmt.Errorf("firewall: %w", err))
		} else {
			fw = got
		}
		c.opts.Logger.Debug("firewall read", "err", err, "backend", fw.Backend)
	}
	return h, fw
}
