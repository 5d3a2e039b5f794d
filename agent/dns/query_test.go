package dns

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/kvmnet/kvmnet/agent/dns/dnstest"
)

func TestServerResolver(t *testing.T) {
	srv := dnstest.Start(t, map[string][]netip.Addr{
		"deb.debian.test": {netip.MustParseAddr("203.0.113.7"), netip.MustParseAddr("2001:db8::7")},
	})
	r, err := ServerResolver(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v4, err := r.LookupNetIP(ctx, "ip4", "deb.debian.test")
	if err != nil || !slices.Equal(v4, []netip.Addr{netip.MustParseAddr("203.0.113.7")}) {
		t.Fatalf("A: %v %v", v4, err)
	}
	v6, err := r.LookupNetIP(ctx, "ip6", "deb.debian.test")
	if err != nil || !slices.Equal(v6, []netip.Addr{netip.MustParseAddr("2001:db8::7")}) {
		t.Fatalf("AAAA: %v %v", v6, err)
	}
	if _, err := r.LookupNetIP(ctx, "ip4", "nope.test"); err == nil {
		t.Fatal("NXDOMAIN answered")
	}
	if srv.Queries() == 0 {
		t.Fatal("the test server saw no query")
	}
}

func TestParseServer(t *testing.T) {
	tests := []struct{ in, want string }{
		{"192.168.122.1", "192.168.122.1:53"},
		{"127.0.0.1:5353", "127.0.0.1:5353"},
		{"[fe80::1%enp1s0]:53", "[fe80::1%enp1s0]:53"},
		{"2001:db8::53", "[2001:db8::53]:53"},
		{"dns.example", ""},
		{"", ""},
	}
	for _, tc := range tests {
		got, err := ParseServer(tc.in)
		if tc.want == "" {
			if err == nil {
				t.Errorf("ParseServer(%q) accepted", tc.in)
			}
			continue
		}
		if err != nil || got.String() != tc.want {
			t.Errorf("ParseServer(%q) = %v, %v", tc.in, got, err)
		}
	}
}
