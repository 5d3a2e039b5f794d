package checks

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kvmnet/kvmnet/agent/dns"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// RouteSource gives the main routing table (agent/link's Discoverer implements it); PING with an
// empty target uses its default gateways.
type RouteSource interface {
	Routes() ([]*kvmnetv1.Route, error)
}

// Options configures a Runner.
type Options struct {
	// Routes is asked for default gateways; nil makes empty PING targets an error.
	Routes RouteSource
	// Resolver resolves names (DNS checks and host names in other checks). nil means the guest's
	// own resolver (net.DefaultResolver: /etc/resolv.conf).
	Resolver *net.Resolver
	// Pinger sends ICMP echoes; nil means ICMPPinger{Mode: PingAuto}.
	Pinger Pinger
	// TLSConfig for https targets; nil means the system roots.
	TLSConfig *tls.Config
}

// Runner runs checks.
type Runner struct {
	routes   RouteSource
	resolver *net.Resolver
	pinger   Pinger
	tls      *tls.Config
}

// New returns a Runner.
func New(opts Options) *Runner {
	r := &Runner{routes: opts.Routes, resolver: opts.Resolver, pinger: opts.Pinger, tls: opts.TLSConfig}
	if r.resolver == nil {
		r.resolver = net.DefaultResolver
	}
	if r.pinger == nil {
		r.pinger = ICMPPinger{Mode: PingAuto}
	}
	return r
}

// Run validates req and runs every check concurrently, each under its own deadline (and ctx).
// Results come back in request order. The only error is a validation error (nothing ran); failed
// checks are results with ok=false.
func (r *Runner) Run(ctx context.Context, req *kvmnetv1.RunChecksRequest) (*kvmnetv1.RunChecksResponse, error) {
	if err := Validate(req); err != nil {
		return nil, err
	}
	out := make([]*kvmnetv1.CheckResult, len(req.GetChecks()))
	var wg sync.WaitGroup
	for i, c := range req.GetChecks() {
		wg.Go(func() { out[i] = r.RunOne(ctx, c) })
	}
	wg.Wait()
	return &kvmnetv1.RunChecksResponse{Results: out}, nil
}

// RunOne runs one (already validated) check on the calling goroutine.
func (r *Runner) RunOne(ctx context.Context, c *kvmnetv1.Check) *kvmnetv1.CheckResult {
	ctx, cancel := context.WithTimeout(ctx, Timeout(c))
	defer cancel()
	res := &kvmnetv1.CheckResult{Check: c}
	start := time.Now()
	var err error
	switch c.GetKind() {
	case kvmnetv1.CheckKind_CHECK_KIND_PING:
		err = r.ping(ctx, c, res)
	case kvmnetv1.CheckKind_CHECK_KIND_DNS:
		err = r.dns(ctx, c, res)
	case kvmnetv1.CheckKind_CHECK_KIND_TCP:
		err = r.tcp(ctx, c, res)
	case kvmnetv1.CheckKind_CHECK_KIND_HTTP:
		err = r.http(ctx, c, res)
	default:
		err = fmt.Errorf("unknown check kind %v", c.GetKind())
	}
	res.LatencyUs = uint64(time.Since(start).Microseconds())
	if err != nil {
		res.Error = explain(ctx, err, Timeout(c))
	} else {
		res.Ok = true
	}
	return res
}

// explain turns deadline errors into one clear sentence.
func explain(ctx context.Context, err error, timeout time.Duration) string {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
		return fmt.Sprintf("timed out after %s: %v", timeout, err)
	}
	return err.Error()
}

func lookupNetwork(f kvmnetv1.Family) string {
	switch f {
	case kvmnetv1.Family_FAMILY_V4:
		return "ip4"
	case kvmnetv1.Family_FAMILY_V6:
		return "ip6"
	}
	return "ip"
}

func dialNetwork(f kvmnetv1.Family) string {
	switch f {
	case kvmnetv1.Family_FAMILY_V4:
		return "tcp4"
	case kvmnetv1.Family_FAMILY_V6:
		return "tcp6"
	}
	return "tcp"
}

// gateway returns the default gateway of the family (v4 first for FAMILY_ANY), lowest metric.
func (r *Runner) gateway(f kvmnetv1.Family) (netip.Addr, error) {
	if r.routes == nil {
		return netip.Addr{}, errors.New("no target and no route source to find the default gateway")
	}
	routes, err := r.routes.Routes()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("read routes: %w", err)
	}
	fams := []uint32{4, 6}
	switch f {
	case kvmnetv1.Family_FAMILY_V4:
		fams = []uint32{4}
	case kvmnetv1.Family_FAMILY_V6:
		fams = []uint32{6}
	}
	for _, fam := range fams {
		var best *kvmnetv1.Route
		for _, rt := range routes {
			if rt.GetFamily() == fam && rt.GetDestination() == "default" && rt.GetGateway() != "" &&
				(best == nil || rt.GetMetric() < best.GetMetric()) {
				best = rt
			}
		}
		if best == nil {
			continue
		}
		a, err := netip.ParseAddr(best.GetGateway())
		if err != nil {
			return netip.Addr{}, fmt.Errorf("default route gateway %q: %w", best.GetGateway(), err)
		}
		if a.Is6() && a.IsLinkLocalUnicast() && a.Zone() == "" {
			a = a.WithZone(best.GetInterface())
		}
		return a, nil
	}
	return netip.Addr{}, fmt.Errorf("no %s default route: no gateway to ping", familyName(f))
}

func familyName(f kvmnetv1.Family) string {
	switch f {
	case kvmnetv1.Family_FAMILY_V4:
		return "IPv4"
	case kvmnetv1.Family_FAMILY_V6:
		return "IPv6"
	}
	return "IPv4 or IPv6"
}

// resolveOne returns the first address of host (an IP literal or a name) in the family.
func (r *Runner) resolveOne(ctx context.Context, host string, f kvmnetv1.Family) (netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Unmap(), nil
	}
	addrs, err := r.resolver.LookupNetIP(ctx, lookupNetwork(f), host)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("resolve %s: %w", host, err)
	}
	if len(addrs) == 0 {
		return netip.Addr{}, fmt.Errorf("resolve %s: no %s address", host, familyName(f))
	}
	return addrs[0].Unmap(), nil
}

func (r *Runner) ping(ctx context.Context, c *kvmnetv1.Check, res *kvmnetv1.CheckResult) error {
	var dst netip.Addr
	var err error
	if c.GetTarget() == "" {
		dst, err = r.gateway(c.GetFamily())
		res.Detail = "target=default_gateway"
	} else {
		dst, err = r.resolveOne(ctx, c.GetTarget(), c.GetFamily())
	}
	if err != nil {
		return err
	}
	res.Address = dst.String()
	rtt, mode, err := r.pinger.Ping(ctx, dst)
	res.Detail = strings.TrimSpace(res.Detail + " mode=" + mode)
	if err != nil {
		return err
	}
	res.Detail += fmt.Sprintf(" rtt_us=%d", rtt.Microseconds())
	return nil
}

func (r *Runner) dns(ctx context.Context, c *kvmnetv1.Check, res *kvmnetv1.CheckResult) error {
	name, server, hasServer := strings.Cut(c.GetTarget(), "@")
	resolver := r.resolver
	res.Address = "resolv.conf"
	if hasServer {
		var err error
		if resolver, err = dns.ServerResolver(server); err != nil {
			return err
		}
		ap, _ := dns.ParseServer(server)
		res.Address = ap.String()
	}
	addrs, err := resolver.LookupNetIP(ctx, lookupNetwork(c.GetFamily()), name)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", name, err)
	}
	if len(addrs) == 0 {
		return fmt.Errorf("resolve %s: no %s answer", name, familyName(c.GetFamily()))
	}
	var s []string
	for _, a := range addrs {
		s = append(s, a.Unmap().String())
	}
	slices.Sort(s)
	res.Detail = "answers=" + strings.Join(s, ",")
	return nil
}

func (r *Runner) dialer() *net.Dialer {
	return &net.Dialer{Resolver: r.resolver}
}

func (r *Runner) tcp(ctx context.Context, c *kvmnetv1.Check, res *kvmnetv1.CheckResult) error {
	conn, err := r.dialer().DialContext(ctx, dialNetwork(c.GetFamily()), c.GetTarget())
	if err != nil {
		return err
	}
	defer conn.Close()
	res.Address = conn.RemoteAddr().String()
	res.Detail = "local=" + conn.LocalAddr().String()
	return nil
}

// maxBody is how much of an HTTP response body is read: enough to prove data flows back.
const maxBody = 64 << 10

func (r *Runner) http(ctx context.Context, c *kvmnetv1.Check, res *kvmnetv1.CheckResult) error {
	network := dialNetwork(c.GetFamily())
	d := r.dialer()
	var mu sync.Mutex
	tr := &http.Transport{
		Proxy:             nil, // the check is about the guest's own path, not a proxy's
		DialContext:       func(ctx context.Context, _, addr string) (net.Conn, error) { return d.DialContext(ctx, network, addr) },
		TLSClientConfig:   r.tls,
		DisableKeepAlives: true,
		ForceAttemptHTTP2: true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		mu.Lock()
		res.Address = info.Conn.RemoteAddr().String()
		mu.Unlock()
	}}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodGet, c.GetTarget(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "kvmnet-agent-check")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	n, bodyErr := io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
	mu.Lock()
	defer mu.Unlock()
	res.Detail = fmt.Sprintf("status=%d proto=%s body_bytes=%d", resp.StatusCode, resp.Proto, n)
	if bodyErr != nil {
		return fmt.Errorf("status %d but the body stalled: %w", resp.StatusCode, bodyErr)
	}
	if resp.StatusCode >= 500 {
		return fmt.Errorf("server error: status %d", resp.StatusCode)
	}
	return nil
}
