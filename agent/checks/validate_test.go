package checks

import (
	"strings"
	"testing"

	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

const (
	ping  = kvmnetv1.CheckKind_CHECK_KIND_PING
	dnsK  = kvmnetv1.CheckKind_CHECK_KIND_DNS
	tcp   = kvmnetv1.CheckKind_CHECK_KIND_TCP
	httpK = kvmnetv1.CheckKind_CHECK_KIND_HTTP
	any_  = kvmnetv1.Family_FAMILY_ANY
	v4    = kvmnetv1.Family_FAMILY_V4
	v6    = kvmnetv1.Family_FAMILY_V6
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		check   *kvmnetv1.Check
		wantErr string // "" = valid
	}{
		{"ping gateway", &kvmnetv1.Check{Kind: ping}, ""},
		{"ping v4 literal", &kvmnetv1.Check{Kind: ping, Target: "192.168.122.1", Family: v4}, ""},
		{"ping v6 link-local with zone", &kvmnetv1.Check{Kind: ping, Target: "fe80::1%enp1s0", Family: v6}, ""},
		{"ping host name", &kvmnetv1.Check{Kind: ping, Target: "deb.debian.org"}, ""},
		{"ping family mismatch", &kvmnetv1.Check{Kind: ping, Target: "::1", Family: v4}, "not IPv4"},
		{"ping v6 family v4 literal", &kvmnetv1.Check{Kind: ping, Target: "10.0.0.1", Family: v6}, "not IPv6"},
		{"ping bad name", &kvmnetv1.Check{Kind: ping, Target: "-bad-.example"}, "neither an IP"},
		{"dns name", &kvmnetv1.Check{Kind: dnsK, Target: "deb.debian.org", Family: v6}, ""},
		{"dns name@server", &kvmnetv1.Check{Kind: dnsK, Target: "deb.debian.org@192.168.122.1"}, ""},
		{"dns name@server:port", &kvmnetv1.Check{Kind: dnsK, Target: "x.test@127.0.0.1:5353"}, ""},
		{"dns empty", &kvmnetv1.Check{Kind: dnsK}, "neither an IP"},
		{"dns address", &kvmnetv1.Check{Kind: dnsK, Target: "8.8.8.8"}, "is an address"},
		{"dns bad server", &kvmnetv1.Check{Kind: dnsK, Target: "x.test@dns.google"}, "after @"},
		{"tcp host:port", &kvmnetv1.Check{Kind: tcp, Target: "deb.debian.org:80"}, ""},
		{"tcp v6", &kvmnetv1.Check{Kind: tcp, Target: "[::1]:443", Family: v6}, ""},
		{"tcp no port", &kvmnetv1.Check{Kind: tcp, Target: "deb.debian.org"}, "host:port"},
		{"tcp port 0", &kvmnetv1.Check{Kind: tcp, Target: "h.test:0"}, "out of range"},
		{"tcp port 70000", &kvmnetv1.Check{Kind: tcp, Target: "h.test:70000"}, "out of range"},
		{"tcp named port", &kvmnetv1.Check{Kind: tcp, Target: "h.test:http"}, "out of range"},
		{"http url", &kvmnetv1.Check{Kind: httpK, Target: "http://deb.debian.org/debian/"}, ""},
		{"https url with port", &kvmnetv1.Check{Kind: httpK, Target: "https://[::1]:8443/x", Family: v6}, ""},
		{"http ftp scheme", &kvmnetv1.Check{Kind: httpK, Target: "ftp://x.test/"}, "http:// or https://"},
		{"http no host", &kvmnetv1.Check{Kind: httpK, Target: "http:///path"}, "http:// or https://"},
		{"http file", &kvmnetv1.Check{Kind: httpK, Target: "file:///etc/passwd"}, "http:// or https://"},
		{"http v4 family v6 literal", &kvmnetv1.Check{Kind: httpK, Target: "http://[::1]/", Family: v4}, "not IPv4"},
		{"timeout max", &kvmnetv1.Check{Kind: ping, TimeoutMs: 30000}, ""},
		{"timeout too large", &kvmnetv1.Check{Kind: ping, TimeoutMs: 30001}, "timeout_ms 30001 out of range"},
		{"unknown kind", &kvmnetv1.Check{Kind: 9, Target: "x"}, "unknown check kind"},
		{"unspecified kind", &kvmnetv1.Check{Target: "x"}, "unknown check kind"},
		{"unknown family", &kvmnetv1.Check{Kind: ping, Family: 7}, "unknown family"},
		{"control characters", &kvmnetv1.Check{Kind: ping, Target: "a\x00b"}, "printable"},
		{"space", &kvmnetv1.Check{Kind: httpK, Target: "http://a b/"}, "without spaces"},
		{"long name", &kvmnetv1.Check{Kind: ping, Name: strings.Repeat("n", 65)}, "name must be"},
		{"long target", &kvmnetv1.Check{Kind: httpK, Target: "http://x.test/" + strings.Repeat("a", 2048)}, "at most 2048"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.check.Name = tc.check.GetName()
			err := Validate(&kvmnetv1.RunChecksRequest{Checks: []*kvmnetv1.Check{tc.check}})
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "check 0") {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestValidateLimits(t *testing.T) {
	if err := Validate(nil); err == nil {
		t.Fatal("nil request accepted")
	}
	many := &kvmnetv1.RunChecksRequest{}
	for range MaxChecks + 1 {
		many.Checks = append(many.Checks, &kvmnetv1.Check{Kind: ping})
	}
	if err := Validate(many); err == nil || !strings.Contains(err.Error(), "at most 64") {
		t.Fatalf("65 checks: %v", err)
	}
	many.Checks = many.Checks[:MaxChecks]
	if err := Validate(many); err != nil {
		t.Fatalf("64 checks: %v", err)
	}
	two := &kvmnetv1.RunChecksRequest{Checks: []*kvmnetv1.Check{{Kind: ping}, {Name: "bad", Kind: tcp, Target: "x"}}}
	if err := Validate(two); err == nil || !strings.Contains(err.Error(), `check 1 ("bad")`) {
		t.Fatalf("err = %v", err)
	}
	if Timeout(&kvmnetv1.Check{}) != DefaultTimeout {
		t.Fatal("timeout 0 is not the default")
	}
}
