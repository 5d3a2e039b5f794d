package collect

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

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
	r, err := bounded(ctx, func(ctx context.Context) (snapshot.Guest, error) { return c.query(ctx, dom, eps, nets), nil })
	if err != nil {
		g.Error = fmt.Sprintf("no answer within %s: %v", c.opts.Timeout, err)
		g.TimedOut = true
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
func (c *Collector) query(ctx context.Context, dom snapshot.Domain, eps []Endpoint, nets []snapshot.Network) snapshot.Guest {
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
		t0 := time.Now()
		st, err := a.GetState(dctx, &kvmnetv1.GetStateRequest{})
		cancel()
		if err != nil {
			_ = a.Close()
			errs = append(errs, disconnectedOr(ep, fmt.Errorf("GetState: %w", err)))
			continue
		}
		g.Latency, g.State, g.Reachable, g.Error = time.Since(t0), st, true, ""
		if c.opts.Checks {
			checks := BuildChecks(st, dom, nets, c.opts.Targets, remaining(ctx))
			if len(checks) > 0 {
				resp, err := a.RunChecks(ctx, &kvmnetv1.RunChecksRequest{Checks: checks})
				if err != nil {
					g.Error = fmt.Sprintf("RunChecks: %v", err)
				} else {
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

// CheckTargets are the targets of the connectivity checks.
type CheckTargets struct {
	// DNSName is resolved through the guest's resolver (default "deb.debian.org").
	DNSName string
	// Egress are "host:port" TCP targets beyond the host (default "deb.debian.org:80").
	Egress []string
	// URLs are fetched with HTTP GET (none by default; `--check-url`).
	URLs []string
}

func (t CheckTargets) withDefaults() CheckTargets {
	if t.DNSName == "" {
		t.DNSName = "deb.debian.org"
	}
	if len(t.Egress) == 0 {
		t.Egress = []string{"deb.debian.org:80"}
	}
	return t
}

// Check names, as collect gives them (diagnose classifies by kind, family and target, not by name).
const (
	CheckGatewayV4 = "gateway-v4"
	CheckDnsmasq   = "dnsmasq-tcp"
	CheckDNSV4     = "dns-v4"
	CheckEgressV4  = "egress-v4"
	CheckHTTPV4    = "http-v4"
	CheckGatewayV6 = "gateway-v6"
	CheckDNSV6     = "dns-v6"
	CheckEgressV6  = "egress-v6"
)

// BuildChecks returns the checks that tell the failure modes apart: IPv4 gateway ping, TCP to the
// bridge's dnsmasq (bridge-ip:53), DNS through the guest's resolver, TCP/HTTP egress, and — when the
// guest has global IPv6 — the IPv6 variants ("IPv6 hangs"). Each check's timeout fits in budget (the
// time left before the collection deadline) so results come back before it. Nothing is returned for
// a guest without an IPv4 default route (diagnose names that cause without checks).
func BuildChecks(st *kvmnetv1.GuestState, dom snapshot.Domain, nets []snapshot.Network, t CheckTargets, budget time.Duration) []*kvmnetv1.Check {
	t = t.withDefaults()
	defIf := snapshot.DefaultIfaceV4(st)
	if defIf == "" {
		return nil
	}
	timeout := uint32(3000)
	if budget > 0 {
		// leave room for the round trip; checks run concurrently in the agent
		ms := (budget - budget/5).Milliseconds()
		if ms < int64(timeout) {
			timeout = uint32(max(ms, 1))
		}
	}
	mk := func(name string, kind kvmnetv1.CheckKind, target string, fam kvmnetv1.Family) *kvmnetv1.Check {
		return &kvmnetv1.Check{Name: name, Kind: kind, Target: target, Family: fam, TimeoutMs: timeout}
	}
	v4, v6 := kvmnetv1.Family_FAMILY_V4, kvmnetv1.Family_FAMILY_V6
	out := []*kvmnetv1.Check{mk(CheckGatewayV4, kvmnetv1.CheckKind_CHECK_KIND_PING, "", v4)}
	if bip := bridgeIPFor(st, defIf, dom, nets); bip != "" {
		out = append(out, mk(CheckDnsmasq, kvmnetv1.CheckKind_CHECK_KIND_TCP, net.JoinHostPort(bip, "53"), v4))
	}
	out = append(out, mk(CheckDNSV4, kvmnetv1.CheckKind_CHECK_KIND_DNS, t.DNSName, v4))
	for _, e := range t.Egress {
		out = append(out, mk(CheckEgressV4, kvmnetv1.CheckKind_CHECK_KIND_TCP, e, v4))
	}
	for _, u := range t.URLs {
		out = append(out, mk(CheckHTTPV4, kvmnetv1.CheckKind_CHECK_KIND_HTTP, u, v4))
	}
	v6s := st.GetIpv6()
	if v6s != nil && !v6s.GetAllDisabled() && (v6s.GetHasGlobalAddress() || v6s.GetHasDefaultRoute()) {
		if v6s.GetHasDefaultRoute() {
			out = append(out, mk(CheckGatewayV6, kvmnetv1.CheckKind_CHECK_KIND_PING, "", v6))
		}
		out = append(out, mk(CheckDNSV6, kvmnetv1.CheckKind_CHECK_KIND_DNS, t.DNSName, v6))
		for _, e := range t.Egress {
			out = append(out, mk(CheckEgressV6, kvmnetv1.CheckKind_CHECK_KIND_TCP, e, v6))
		}
	}
	return out
}

// bridgeIPFor is the host's IPv4 on the libvirt network of the guest interface ifname (matched to
// the domain NIC by MAC).
func bridgeIPFor(st *kvmnetv1.GuestState, ifname string, dom snapshot.Domain, nets snapshot.Networks) string {
	for _, it := range st.GetInterfaces() {
		if it.GetName() != ifname {
			continue
		}
		if nic, ok := dom.NIC(snapshot.ParseMAC(it.GetMac())); ok {
			n, _ := nets.Of(nic)
			return n.BridgeIPv4()
		}
	}
	return ""
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
