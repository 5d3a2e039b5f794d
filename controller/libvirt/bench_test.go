package libvirt

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/kvmnet/kvmnet/controller/libvirt/libvirtxml"
	"github.com/kvmnet/kvmnet/controller/snapshot"
)

// BenchmarkFill measures reading N networks and N domains (libvirt's test driver, so the number is the
// adapter's own cost: RPC-free calls, XML parsing, conversion). Reports ms per Fill.
func BenchmarkFill(b *testing.B) {
	for _, n := range []int{10, 50} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			ctx := context.Background()
			s, err := Open(ctx, "test:///default", nil)
			if err != nil {
				b.Fatal(err)
			}
			defer func() { _ = s.Close() }()
			for i := range n {
				x := strings.NewReplacer("default", fmt.Sprintf("n%d", i), "virbr0", fmt.Sprintf("vb%d", i),
					"192.168.122.", fmt.Sprintf("10.%d.%d.", i/250, i%250)).Replace(libvirtxml.DefaultNetworkXML)
				if _, err := s.DefineNetwork(ctx, x); err != nil {
					b.Fatal(err)
				}
				d := fmt.Sprintf(`<domain type='test'><name>d%d</name><memory>65536</memory><os><type>hvm</type></os><devices>
<interface type='network'><mac address='52:54:00:00:%02x:%02x'/><source network='n%d'/></interface>
<channel type='unix'><source mode='bind' path='/x/d%d.sock'/><target type='virtio' name='org.kvmnet.agent.0'/></channel>
</devices></domain>`, i, i/256, i%256, i, i)
				if err := s.DefineDomainXML(ctx, d); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for b.Loop() {
				var snap snapshot.Snapshot
				if err := s.Fill(ctx, &snap); err != nil || len(snap.Domains) != n+1 {
					b.Fatalf("%v %d", err, len(snap.Domains))
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/fill")
		})
	}
}
