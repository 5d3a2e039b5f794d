package diagnose

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/kvmnet/kvmnet/controller/snapshot"
)

// routedNoReturn is healthyRouted as the lab's routed network meets it before the upstream learns
// the route back: the host accepts the guest's traffic (libvirt's route-mode ACCEPT, ip_forward=1),
// the guest's own TCP check times out.
func routedNoReturn() snapshot.Snapshot {
	s := healthyRouted()
	s.Firewall.Flows[0].Rule = "-A LIBVIRT_FWO -s 192.168.100.0/24 -i virbr3 -o eth0 -j ACCEPT"
	s.Guests[0].Checks[3] = result("egress-tcp-v4", tcp, v4, "deb.debian.org:80", false, "timed out after 3s: dial tcp4 203.0.113.1:80: i/o timeout")
	s.Guests[0].Checks[3].Address = "203.0.113.1:80"
	return s
}

// guestFinding returns vm1's finding with code, or fails.
func guestFinding(t *testing.T, r Report, code Code) Finding {
	t.Helper()
	g, ok := r.Guest("vm1")
	if !ok {
		t.Fatal("no vm1")
	}
	for _, f := range g.Findings {
		if f.Code == code {
			return f
		}
	}
	t.Fatalf("vm1 has no %s; codes %v", code, Codes(r.All()))
	return Finding{}
}

func TestRoutedOpenEgress(t *testing.T) {
	tests := []struct {
		name      string
		snap      func() snapshot.Snapshot
		codes     []Code
		upstream  bool     // the guest finding blames the upstream's return route
		fix, summ []string // substrings of the guest finding's fix / summary
	}{
		{name: "routed, nothing on the host blocks: the upstream's return route", snap: routedNoReturn,
			codes: []Code{CodeGuestEgressBlocked}, upstream: true,
			fix:  []string{"on the upstream router: ip route add 192.168.100.0/24 via <this host's address on eth0>", "tcpdump -ni eth0", "<forward mode='nat'/>"},
			summ: []string{`network "routed" forwards without NAT (forward mode route)`, "return route unknown", "nothing on this host blocks"}},
		{name: "open network, policy ACCEPT: the same", snap: func() snapshot.Snapshot {
			s := routedNoReturn()
			s.Networks[0].Forward = snapshot.ForwardOpen
			s.Firewall.Flows[0].Rule, s.Firewall.Flows[0].Chain = "policy ACCEPT of FORWARD", "iptables-nft filter FORWARD"
			return s
		}, codes: []Code{CodeGuestEgressBlocked}, upstream: true, summ: []string{"forward mode open"}},
		{name: "routed, egress not evaluated: still the upstream", snap: func() snapshot.Snapshot {
			s := routedNoReturn()
			s.Firewall.Flows = s.Firewall.Flows[1:]
			return s
		}, codes: []Code{CodeGuestEgressBlocked}, upstream: true},
		{name: "routed with ip_forward=0: the host's cause, fixed by host fix", snap: func() snapshot.Snapshot {
			s := routedNoReturn()
			s.Host.IPForward = false
			return s
		}, codes: []Code{CodeIPForwardOff, CodeGuestEgressBlocked}, fix: []string{"kvmnetctl host fix --only ip_forward_off"}},
		{name: "routed with a foreign FORWARD REJECT: named, and no host fix promised for it", snap: func() snapshot.Snapshot {
			s := routedNoReturn()
			s.Firewall.Flows[0].Verdict = snapshot.VerdictReject
			s.Firewall.Flows[0].Rule = "-A FORWARD -s 192.168.100.0/24 -j REJECT --reject-with icmp-port-unreachable"
			s.Firewall.Flows[0].Chain = "iptables-nft filter FORWARD"
			s.Guests[0].Checks[3].Error = "dial tcp4 203.0.113.1:80: connect: connection refused"
			return s
		}, codes: []Code{CodeFirewallEgressBlocked, CodeGuestEgressBlocked},
			fix: []string{"kvmnetctl host check names the manual step for firewall_egress_blocked"}},
		{name: "NAT network: no return-route talk", snap: func() snapshot.Snapshot {
			s := healthyNAT()
			s.Guests[0].Checks[3] = result("egress-tcp-v4", tcp, v4, "deb.debian.org:80", false, "i/o timeout")
			s.Guests[0].Checks[3].Address = "151.101.2.132:80"
			return s
		}, codes: []Code{CodeGuestEgressBlocked}, fix: []string{"kvmnetctl host check (names the rule that drops the flow)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := Diagnose(tc.snap())
			codes := Codes(r.All())
			slices.Sort(codes)
			want := slices.Clone(tc.codes)
			slices.Sort(want)
			if !slices.Equal(codes, want) {
				t.Fatalf("codes %v, want %v", codes, want)
			}
			f := guestFinding(t, r, CodeGuestEgressBlocked)
			cause, _ := f.Get("likely_cause")
			if (cause == "upstream_return_route") != tc.upstream {
				t.Fatalf("likely_cause=%q, want upstream=%v; evidence %v", cause, tc.upstream, f.Evidence)
			}
			if tc.upstream {
				for _, kv := range []string{"return_route=unknown", "forward=" + string(tc.snap().Networks[0].Forward)} {
					if !slices.Contains(f.Evidence, kv) {
						t.Errorf("evidence lacks %s: %v", kv, f.Evidence)
					}
				}
				if strings.Contains(f.Fix, "host fix") {
					t.Errorf("upstream cause sent to host fix: %s", f.Fix)
				}
			}
			for _, s := range tc.fix {
				if !strings.Contains(f.Fix, s) {
					t.Errorf("fix lacks %q: %s", s, f.Fix)
				}
			}
			for _, s := range tc.summ {
				if !strings.Contains(f.Summary, s) {
					t.Errorf("summary lacks %q: %s", s, f.Summary)
				}
			}
			for _, nr := range r.Networks {
				if nr.Masquerade != "n/a" && nr.Forward != "nat" {
					t.Errorf("network %s (%s): masquerade %q, want n/a", nr.Name, nr.Forward, nr.Masquerade)
				}
			}
		})
	}
}

// TestRoutedGolden pins the whole report of the routed cases the lab reproduces.
func TestRoutedGolden(t *testing.T) {
	reject := routedNoReturn()
	reject.Firewall.Flows[0].Verdict = snapshot.VerdictReject
	reject.Firewall.Flows[0].Rule = "-A FORWARD -s 192.168.100.0/24 -j REJECT --reject-with icmp-port-unreachable"
	reject.Firewall.Flows[0].Chain = "iptables-nft filter FORWARD"
	for name, s := range map[string]snapshot.Snapshot{"routed-no-return.json": routedNoReturn(), "routed-reject.json": reject} {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(Diagnose(s)); err != nil {
			t.Fatal(err)
		}
		golden(t, name, buf.Bytes())
	}
}
