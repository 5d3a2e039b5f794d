package checks

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/kvmnet/kvmnet/agent/dns"
	"github.com/kvmnet/kvmnet/agent/dns/dnstest"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
	"github.com/kvmnet/kvmnet/scripts/lab/testenv"
)

type fakeRoutes []*kvmnetv1.Route

func (f fakeRoutes) Routes() ([]*kvmnetv1.Route, error) { return f, nil }

// loopbackHTTP starts an HTTP server on addr ("127.0.0.1:0" or "[::1]:0").
func loopbackHTTP(t *testing.T, addr string) string {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "hello") })
	mux.HandleFunc("/missing", http.NotFound)
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://203.0.113.1/elsewhere", http.StatusMovedPermanently)
	})
	mux.HandleFunc("/boom", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	srv := httptest.NewUnstartedServer(mux)
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return "http://" + l.Addr().String()
}

func tcpListener(t *testing.T, addr string) string {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return l.Addr().String()
}

// closedPort returns a loopback address nobody listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestRunLoopback(t *testing.T) {
	srv := dnstest.Start(t, map[string][]netip.Addr{
		"mirror.kvmnet.test": {netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")},
		"v4only.kvmnet.test": {netip.MustParseAddr("127.0.0.1")},
	})
	resolver, err := dns.ServerResolver(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	web4 := loopbackHTTP(t, "127.0.0.1:0")
	web6 := loopbackHTTP(t, "[::1]:0")
	tcp4 := tcpListener(t, "127.0.0.1:0")
	tcp6 := tcpListener(t, "[::1]:0")
	_, port4, _ := net.SplitHostPort(tcp4)

	r := New(Options{Resolver: resolver})
	tests := []struct {
		check  *kvmnetv1.Check
		ok     bool
		addr   string // expected CheckResult.Address ("" = not checked)
		detail string // substring of Detail or Error
	}{
		{&kvmnetv1.Check{Name: "dns-a", Kind: dnsK, Target: "mirror.kvmnet.test", Family: v4}, true, "", "answers=127.0.0.1"},
		{&kvmnetv1.Check{Name: "dns-aaaa", Kind: dnsK, Target: "mirror.kvmnet.test", Family: v6}, true, "", "answers=::1"},
		{&kvmnetv1.Check{Name: "dns-any", Kind: dnsK, Target: "mirror.kvmnet.test"}, true, "", "answers=127.0.0.1,::1"},
		{&kvmnetv1.Check{Name: "dns-aaaa-missing", Kind: dnsK, Target: "v4only.kvmnet.test", Family: v6}, false, "", "v4only.kvmnet.test"},
		{&kvmnetv1.Check{Name: "dns-nxdomain", Kind: dnsK, Target: "nope.kvmnet.test", Family: v4}, false, "", "nope.kvmnet.test"},
		{&kvmnetv1.Check{Name: "dns-at-server", Kind: dnsK, Target: "v4only.kvmnet.test@" + srv.Addr, Family: v4}, true, srv.Addr, "answers=127.0.0.1"},
		{&kvmnetv1.Check{Name: "tcp4", Kind: tcp, Target: tcp4, Family: v4}, true, tcp4, "local=127.0.0.1:"},
		{&kvmnetv1.Check{Name: "tcp6", Kind: tcp, Target: tcp6, Family: v6}, true, tcp6, "local=[::1]:"},
		{&kvmnetv1.Check{Name: "tcp-by-name-v4", Kind: tcp, Target: "v4only.kvmnet.test:" + port4, Family: v4}, true, tcp4, ""},
		{&kvmnetv1.Check{Name: "tcp-refused", Kind: tcp, Target: closedPort(t), Family: v4}, false, "", "refused"},
		{&kvmnetv1.Check{Name: "http4", Kind: httpK, Target: web4 + "/ok", Family: v4}, true, strings.TrimPrefix(web4, "http://"), "status=200"},
		{&kvmnetv1.Check{Name: "http6", Kind: httpK, Target: web6 + "/ok", Family: v6}, true, strings.TrimPrefix(web6, "http://"), "status=200"},
		{&kvmnetv1.Check{Name: "http-404-is-reachable", Kind: httpK, Target: web4 + "/missing"}, true, "", "status=404"},
		{&kvmnetv1.Check{Name: "http-redirect-not-followed", Kind: httpK, Target: web4 + "/redirect"}, true, "", "status=301"},
		{&kvmnetv1.Check{Name: "http-503", Kind: httpK, Target: web4 + "/boom"}, false, "", "status 503"},
		{&kvmnetv1.Check{Name: "http-slow", Kind: httpK, Target: web4 + "/slow", TimeoutMs: 300}, false, "", "timed out after 300ms"},
	}
	req := &kvmnetv1.RunChecksRequest{}
	for _, tc := range tests {
		req.Checks = append(req.Checks, tc.check)
	}
	resp, err := r.Run(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Results) != len(tests) {
		t.Fatalf("%d results for %d checks", len(resp.Results), len(tests))
	}
	for i, tc := range tests {
		res := resp.Results[i]
		t.Run(tc.check.Name, func(t *testing.T) {
			if res.Check.GetName() != tc.check.Name {
				t.Fatalf("result %d is for %q: order lost", i, res.Check.GetName())
			}
			if res.Ok != tc.ok {
				t.Fatalf("ok=%v error=%q detail=%q", res.Ok, res.Error, res.Detail)
			}
			if tc.addr != "" && res.Address != tc.addr {
				t.Fatalf("address %q, want %q", res.Address, tc.addr)
			}
			if !strings.Contains(res.Detail+" "+res.Error, tc.detail) {
				t.Fatalf("detail %q error %q, want %q", res.Detail, res.Error, tc.detail)
			}
			if res.Ok && res.Error != "" || !res.Ok && res.Error == "" {
				t.Fatalf("ok=%v with error %q", res.Ok, res.Error)
			}
			if res.LatencyUs == 0 {
				t.Fatal("latency not measured")
			}
		})
	}
}

func TestRunRejectsInvalidRequestBeforeRunning(t *testing.T) {
	web := loopbackHTTP(t, "127.0.0.1:0")
	hits := 0
	r := New(Options{Pinger: pingerFunc(func() { hits++ })})
	_, err := r.Run(context.Background(), &kvmnetv1.RunChecksRequest{Checks: []*kvmnetv1.Check{
		{Kind: ping, Target: "127.0.0.1"},
		{Kind: httpK, Target: web + "/ok", TimeoutMs: 60000},
	}})
	if err == nil || !strings.Contains(err.Error(), "timeout_ms 60000") {
		t.Fatalf("err = %v", err)
	}
	if hits != 0 {
		t.Fatal("a check ran although the request was invalid")
	}
}

type pingerFunc func()

func (f pingerFunc) Ping(context.Context, netip.Addr) (time.Duration, string, error) {
	f()
	return time.Millisecond, "fake", nil
}

// TestRunPingLoopback pings through the Runner with the real pinger: the default gateway (a route
// source naming 127.0.0.1), ::1, and a family without a default route. Raw sockets need root here
// (ping_group_range excludes root's group by default), hence Require.
func TestRunPingLoopback(t *testing.T) {
	testenv.Require(t)
	r := New(Options{Routes: fakeRoutes{{Family: 4, Destination: "default", Gateway: "127.0.0.1", Interface: "lo", Metric: 100}}})
	resp, err := r.Run(context.Background(), &kvmnetv1.RunChecksRequest{Checks: []*kvmnetv1.Check{
		{Name: "ping-gw-v4", Kind: ping, Family: v4},
		{Name: "ping-gw-v6", Kind: ping, Family: v6},
		{Name: "ping-lo6", Kind: ping, Target: "::1", Family: v6},
	}})
	if err != nil {
		t.Fatal(err)
	}
	gw, nov6, lo6 := resp.Results[0], resp.Results[1], resp.Results[2]
	if !gw.Ok || gw.Address != "127.0.0.1" || !strings.Contains(gw.Detail, "target=default_gateway") || gw.LatencyUs == 0 {
		t.Fatalf("gateway: %v", gw)
	}
	if nov6.Ok || !strings.Contains(nov6.Error, "no IPv6 default route") {
		t.Fatalf("no v6 gateway: %v", nov6)
	}
	if !lo6.Ok || lo6.Address != "::1" || !strings.Contains(lo6.Detail, "rtt_us=") {
		t.Fatalf("::1: %v", lo6)
	}
}

func TestPingLoopbackModes(t *testing.T) {
	testenv.Require(t)
	for _, mode := range []PingMode{PingAuto, PingRaw} {
		for _, dst := range []string{"127.0.0.1", "::1"} {
			t.Run(fmt.Sprintf("mode%d-%s", mode, dst), func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				defer cancel()
				rtt, m, err := ICMPPinger{Mode: mode}.Ping(ctx, netip.MustParseAddr(dst))
				if err != nil {
					t.Fatal(err)
				}
				if rtt <= 0 || (mode == PingRaw && m != "raw") || m == "" {
					t.Fatalf("rtt=%v mode=%q", rtt, m)
				}
			})
		}
	}
}
