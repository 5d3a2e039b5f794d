package collect

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kvmnet/kvmnet/controller/checks"
	"github.com/kvmnet/kvmnet/controller/snapshot"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// Endpoint is one way to reach a domain's agent.
type Endpoint struct {
	// Transport kind.
	Transport snapshot.AgentTransport
	// Addr for the dialer (vsock CID:7531, or the channel's socket).
	Addr snapshot.AgentAddr
	// Disconnected is true when libvirt reports the virtio-serial channel as disconnected (nothing
	// in the guest has the port open).
	Disconnected bool
}

// Endpoints returns the ways to reach a domain's agent, best first: vsock (CID from <vsock>), then
// the org.kvmnet.agent.0 channel's unix socket. Empty when the domain has neither.
func Endpoints(d snapshot.Domain) []Endpoint {
	var out []Endpoint
	if d.VsockCID > 2 {
		out = append(out, Endpoint{Transport: snapshot.TransportVsock, Addr: snapshot.AgentAddr{Scheme: "vsock", CID: d.VsockCID, Port: AgentVsockPort}})
	}
	if ch, ok := d.Channel(snapshot.ChannelKvmnet); ok && ch.Type == "unix" && ch.Path != "" {
		out = append(out, Endpoint{Transport: snapshot.TransportVirtioSerial, Addr: snapshot.AgentAddr{Scheme: "serial", Path: ch.Path},
			Disconnected: ch.State == "disconnected"})
	}
	return out
}

// guest queries one domain's agent; it returns by ctx's deadline whatever the agent does.
func (c *Collector) guest(ctx context.Context, dom snapshot.Domain, nets []snapshot.Network) snapshot.Guest {
	eps := Endpoints(dom)
	g := snapshot.Guest{Domain: dom.Name, Transport: snapshot.TransportNone}
	if len(eps) > 0 {
		g.Transport, g.Address, g.Addr = eps[0].Transport, eps[0].Addr.String(), eps[0].Addr
	}
	switch {
	case len(eps) == 0:
		return c.withQGA(ctx, dom, g)
	case !dom.Running():
		g.Error = "domain is " + dom.State
		return g
	case c.src.Agents == nil:
		g.Error = "agents not queried"
		return g
	case len(c.opts.Domains) > 0 && !slices.Contains(c.opts.Domains, dom.Name):
		g.Error = "not selected"
		return g
	}
	start := time.Now()
	var connected atomic.Bool
	r, err := bounded(ctx, func(ctx context.Context) (snapshot.Guest, error) {
		return c.query(ctx, dom, eps, nets, &connected), nil
	})
	if err == nil && !r.Reachable && ctx.Err() != nil {
		// The call failed because the deadline passed (its error only echoes that): the same
		// outcome as bounded giving up first, whichever of the two won the race.
		err = ctx.Err()
	}
	if err != nil {
		g.Error = fmt.Sprintf("no answer within %s: %v", c.opts.Timeout, err)
		g.TimedOut = true
		g.Connected = connected.Load()
		c.opts.Logger.Debug("guest timed out", "domain", dom.Name, "after", time.Since(start))
		return g
	}
	// The query may return on its own just as the deadline passes (GetState failing with
	// DeadlineExceeded): still a guest that did not answer in time. gRPC's deadline timer may fire a
	// moment before ctx's, so look at the clock, not only ctx.Err.
	r.TimedOut = r.Error != "" && deadlinePassed(ctx)
	c.opts.Logger.Debug("guest queried", "domain", dom.Name, "reachable", r.Reachable, "err", r.Error, "took", time.Since(start))
	return c.withQGA(ctx, dom, r)
}

// queuedOut is the view of a guest whose turn never came before the caller's context ended (Workers).
func (c *Collector) queuedOut(dom snapshot.Domain, err error) snapshot.Guest {
	g := snapshot.Guest{Domain: dom.Name, Transport: snapshot.TransportNone}
	eps := Endpoints(dom)
	if len(eps) == 0 {
		return g // nothing would have been dialled (and no time is left for qemu-guest-agent)
	}
	g.Transport, g.Address, g.Addr = eps[0].Transport, eps[0].Addr.String(), eps[0].Addr
	if !dom.Running() {
		g.Error = "domain is " + dom.State
		return g
	}
	g.Error = fmt.Sprintf("not queried before the deadline: %v", err)
	g.TimedOut = true
	return g
}

// query tries each endpoint in turn until one answers GetState, then runs the checks there.
// connected is set once an agent took a connection (read even when query is cut off by the deadline).
func (c *Collector) query(ctx context.Context, dom snapshot.Domain, eps []Endpoint, nets []snapshot.Network, connected *atomic.Bool) snapshot.Guest {
	g := snapshot.Guest{Domain: dom.Name}
	var errs []string
	for _, ep := range eps {
		g.Transport, g.Address, g.Addr = ep.Transport, ep.Addr.String(), ep.Addr
		// The agent closes and reopens its port after every host session (about a second in a TCG
		// guest, seen in the lab), so "disconnected" right after another kvmnetctl command is
		// usually that gap: give the port DisconnectedGrace to come back before calling it unreachable.
		dctx, cancel := ctx, context.CancelFunc(func() {})
		if ep.Disconnected && !c.opts.DialDisconnected {
			dctx, cancel = context.WithTimeout(ctx, c.opts.DisconnectedGrace)
		}
		a, err := c.src.Agents.DialAgent(dctx, ep.Addr)
		if err != nil {
			cancel()
			errs = append(errs, disconnectedOr(ep, err))
			continue
		}
		connected.Store(true)
		g.Connected = true
		t0 := time.Now()
		st, err := a.GetState(dctx, &kvmnetv1.GetStateRequest{})
		cancel()
		if err != nil {
			_ = a.Close()
			errs = append(errs, disconnectedOr(ep, fmt.Errorf("GetState: %w", err)))
			continue
		}
		BoundState(st)
		g.Latency, g.State, g.Reachable, g.Error = time.Since(t0), st, true, ""
		if c.opts.Checks {
			cs := checks.Status(st, dom, nets, c.opts.Targets, remaining(ctx))
			if len(cs) > 0 {
				resp, err := a.RunChecks(ctx, &kvmnetv1.RunChecksRequest{Checks: cs})
				if err != nil {
					g.Error = fmt.Sprintf("RunChecks: %v", err)
				} else {
					Bound(resp)
					g.Checks = resp.GetResults()
				}
			}
		}
		_ = a.Close()
		return g
	}
	g.Error = strings.Join(errs, "; ")
	return g
}

// disconnectedOr describes a failed dial: for a channel libvirt reported disconnected, that fact (the
// dial error is only its consequence); otherwise the error itself.
func disconnectedOr(ep Endpoint, err error) string {
	if ep.Disconnected {
		return ep.Addr.String() + ": channel disconnected (no agent has the port open in the guest)"
	}
	return withAddr(ep.Addr.String(), err)
}

// withAddr prefixes err with addr unless the message names it already.
func withAddr(addr string, err error) string {
	if strings.Contains(err.Error(), addr) {
		return err.Error()
	}
	return addr + ": " + err.Error()
}

func deadlinePassed(ctx context.Context) bool {
	dl, ok := ctx.Deadline()
	return ctx.Err() != nil || (ok && !time.Now().Before(dl))
}

func remaining(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return time.Until(dl)
	}
	return 0
}

// ErrNoDomain is returned by SelectDomains for names libvirt does not know.
var ErrNoDomain = errors.New("no such domain")

// SelectDomains checks that every name is a domain of the snapshot.
func SelectDomains(s snapshot.Snapshot, names []string) error {
	var missing []string
	for _, n := range names {
		if !slices.ContainsFunc(s.Domains, func(d snapshot.Domain) bool { return d.Name == n }) {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s (see virsh list --all)", ErrNoDomain, strings.Join(missing, ", "))
	}
	return nil
}
