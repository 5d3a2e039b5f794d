package perf

import (
	"context"
	"net"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/kvmnet/kvmnet/agent/checks"
	"github.com/kvmnet/kvmnet/agent/transport"
	"github.com/kvmnet/kvmnet/controller/agentclient"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// loopbackTCP listens on 127.0.0.1 and accepts (and closes) connections until the test ends: the
// target of the real TCP check in BenchmarkRPC.
func loopbackTCP(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	return l.Addr().String()
}

// latencies runs call b.N times (after a warm-up) and reports p50/p99 in microseconds.
func latencies(b *testing.B, call func(context.Context) error) {
	ctx := context.Background()
	for range 50 {
		if err := call(ctx); err != nil {
			b.Fatal(err)
		}
	}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if err := call(ctx); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
	b.ReportMetric(us(lat[len(lat)/2]), "p50-us")
	b.ReportMetric(us(lat[min(len(lat)-1, len(lat)*99/100)]), "p99-us")
}

// BenchmarkRPC measures GetState and RunChecks (one real TCP check to a loopback listener, run by
// agent/checks) against the real agent server and service (fake sensors), with the real controller
// client, over a unix socket and over the emulated virtio-serial stream (resync handshake once per
// connection, then gRPC framing over the byte stream). Use -benchtime=2000x or more for a
// meaningful p99.
func BenchmarkRPC(b *testing.B) {
	dir := b.TempDir()
	target := loopbackTCP(b)
	mk := func() kvmnetv1.AgentServer {
		return newService(b, dir, "bench", "52:54:00:00:00:01", checks.New(checks.Options{Routes: fakeLinks{}}))
	}
	unixPath := filepath.Join(dir, "agent.sock")
	l, err := transport.ListenUnix(unixPath)
	if err != nil {
		b.Fatal(err)
	}
	serve(b, mk(), l)
	serialPath := serialGuest(b, dir, "serial", mk())
	req := &kvmnetv1.RunChecksRequest{Checks: []*kvmnetv1.Check{{Name: "tcp", Kind: kvmnetv1.CheckKind_CHECK_KIND_TCP,
		Target: target, Family: kvmnetv1.Family_FAMILY_V4, TimeoutMs: 2000}}}
	for _, tr := range []struct{ name, addr string }{{"unix", "unix:" + unixPath}, {"serial-emulated", "serial:" + serialPath}} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := agentclient.Dial(ctx, tr.addr)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = c.Close() })
		b.Run("GetState/"+tr.name, func(b *testing.B) {
			latencies(b, func(ctx context.Context) error {
				st, err := c.GetState(ctx, &kvmnetv1.GetStateRequest{})
				if err == nil && st.GetHostname() != "bench" {
					b.Fatalf("hostname %q", st.GetHostname())
				}
				return err
			})
		})
		b.Run("RunChecks/"+tr.name, func(b *testing.B) {
			latencies(b, func(ctx context.Context) error {
				r, err := c.RunChecks(ctx, req)
				if err == nil && (len(r.GetResults()) != 1 || !r.GetResults()[0].GetOk()) {
					b.Fatalf("check failed: %v", r.GetResults())
				}
				return err
			})
		})
	}
}
