package agentclient

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/kvmnet/kvmnet/agent/server"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// benchUnary times b.N GetState calls on c and reports p50/p99 latency next to ns/op.
func benchUnary(b *testing.B, c *Client) {
	ctx := context.Background()
	for range 50 { // warm up
		if _, err := c.GetState(ctx, &kvmnetv1.GetStateRequest{}); err != nil {
			b.Fatal(err)
		}
	}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if _, err := c.GetState(ctx, &kvmnetv1.GetStateRequest{}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[min(len(lat)-1, len(lat)*99/100)].Nanoseconds()), "p99-ns")
}

// BenchmarkUnaryGetState measures a unary RPC (small GuestState) over each transport.
func BenchmarkUnaryGetState(b *testing.B) {
	b.Run("unix", func(b *testing.B) {
		addr, _ := unixAgent(b, "bench")
		benchUnary(b, dial(b, addr))
	})
	b.Run("serial-emulated", func(b *testing.B) {
		e := newEmu(b)
		serialAgent(b, e, "bench", server.Options{})
		benchUnary(b, dial(b, "serial:"+e.HostPath()))
	})
}
