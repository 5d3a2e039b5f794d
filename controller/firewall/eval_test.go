package firewall

import (
	"net/netip"
	"strings"
	"testing"
)

var (
	guestIP  = netip.MustParseAddr("192.168.122.2")
	bridgeIP = netip.MustParseAddr("192.168.122.1")
)

func egress(port uint16) Packet {
	return Packet{In: "virbr0", Out: "eth0", Src: guestIP, Dst: ProbeAddr, Proto: "tcp", SPort: 40000, DPort: port, State: StateNew}
}

func dhcp() Packet {
	return Packet{In: "virbr0", Src: netip.IPv4Unspecified(), Dst: netip.AddrFrom4([4]byte{255, 255, 255, 255}),
		Proto: "udp", SPort: 68, DPort: 67, State: StateNew, DstLocal: true}
}

func dns(proto string) Packet {
	return Packet{In: "virbr0", Src: guestIP, Dst: bridgeIP, Proto: proto, SPort: 40001, DPort: 53, State: StateNew, DstLocal: true}
}

func returnPath() Packet {
	return Packet{In: "eth0", Out: "virbr0", Src: ProbeAddr, Dst: guestIP, Proto: "tcp", SPort: 80, DPort: 40000, State: StateEstablished}
}

// scenarios builds the states the evaluator is tested on, all from real or realistic rule sets.
func scenarios(t *testing.T) map[string]*State {
	return map[string]*State{
		"libvirt9":            {IPTablesNFT: mustIPT(t, "libvirt9-default.rules", "nft")},
		"ufw":                 {IPTablesNFT: mustIPT(t, "ufw-enabled.rules", "nft")},
		"ufw fixed":           {IPTablesNFT: mustIPT(t, "ufw-enabled-fixed.rules", "nft")},
		"ufw+libvirt10":       {IPTablesNFT: mustIPT(t, "ufw-enabled.rules", "nft"), NFTables: mustNFT(t, "libvirt10-nat.nft.json")},
		"ufw fixed+libvirt10": {IPTablesNFT: mustIPT(t, "ufw-enabled-fixed.rules", "nft"), NFTables: mustNFT(t, "libvirt10-nat.nft.json")},
		"docker+libvirt10":    {IPTablesNFT: mustIPT(t, "docker-forward-drop.rules", "nft"), NFTables: mustNFT(t, "libvirt10-nat.nft.json")},
		"libvirt10":           {NFTables: mustNFT(t, "libvirt10-nat.nft.json")},
		"legacy docker+libvirt9 nft": {IPTablesNFT: mustIPT(t, "libvirt9-default.rules", "nft"),
			IPTablesLegacy: mustIPT(t, "docker-forward-drop.rules", "legacy")},
		"flushed": {IPTablesNFT: &IPTables{Variant: "nft"}},
	}
}

func TestEvaluate(t *testing.T) {
	sc := scenarios(t)
	tests := []struct {
		name, scenario string
		hook           Hook
		pkt            Packet
		verdict        string
		rule           string // substring of the deciding rule
		chain          string // substring of the deciding chain
		nat            string
	}{
		{"libvirt9 egress", "libvirt9", HookForward, egress(80), "accept", "-A LIBVIRT_FWO -s 192.168.122.0/24 -i virbr0 -j ACCEPT", "filter LIBVIRT_FWO", ""},
		{"libvirt9 return", "libvirt9", HookForward, returnPath(), "accept", "-A LIBVIRT_FWI -d 192.168.122.0/24 -o virbr0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT", "LIBVIRT_FWI", ""},
		{"libvirt9 inbound new rejected", "libvirt9", HookForward, Packet{In: "eth0", Out: "virbr0", Src: ProbeAddr, Dst: guestIP, Proto: "tcp", SPort: 5, DPort: 22, State: StateNew}, "reject", "-A LIBVIRT_FWI -o virbr0 -j REJECT", "LIBVIRT_FWI", ""},
		{"libvirt9 spoofed source rejected", "libvirt9", HookForward, Packet{In: "virbr0", Out: "eth0", Src: netip.MustParseAddr("10.9.9.9"), Dst: ProbeAddr, Proto: "tcp", SPort: 5, DPort: 80, State: StateNew}, "reject", "-A LIBVIRT_FWO -i virbr0 -j REJECT", "LIBVIRT_FWO", ""},
		{"libvirt9 dhcp", "libvirt9", HookInput, dhcp(), "accept", "--dport 67 -j ACCEPT", "LIBVIRT_INP", ""},
		{"libvirt9 dns udp", "libvirt9", HookInput, dns("udp"), "accept", "-p udp -m udp --dport 53 -j ACCEPT", "LIBVIRT_INP", ""},
		{"libvirt9 dns tcp", "libvirt9", HookInput, dns("tcp"), "accept", "-p tcp -m tcp --dport 53 -j ACCEPT", "LIBVIRT_INP", ""},
		{"libvirt9 masquerade", "libvirt9", HookPostrouting, egress(80), "accept", "-p tcp -j MASQUERADE --to-ports 1024-65535", "nat LIBVIRT_PRT", "masquerade"},
		{"libvirt9 no nat inside subnet", "libvirt9", HookPostrouting, Packet{In: "virbr0", Out: "virbr0", Src: guestIP, Dst: bridgeIP.Next().Next(), Proto: "tcp", DPort: 80, State: StateNew}, "accept", "no source NAT", "", ""},
		{"ufw egress blocked by policy", "ufw", HookForward, egress(80), "drop", "policy DROP of FORWARD", "iptables-nft filter FORWARD", ""},
		{"ufw dhcp dropped by skip-to-policy", "ufw", HookInput, dhcp(), "drop", "-A ufw-skip-to-policy-input -j DROP", "ufw-skip-to-policy-input", ""},
		{"ufw dns dropped by policy", "ufw", HookInput, dns("udp"), "drop", "policy DROP of INPUT", "filter INPUT", ""},
		{"ufw return accepted", "ufw", HookForward, returnPath(), "accept", "-A ufw-before-forward -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT", "ufw-before-forward", ""},
		{"ufw fixed egress", "ufw fixed", HookForward, egress(443), "accept", "-A ufw-user-forward -i virbr0 -o eth0 -j ACCEPT", "ufw-user-forward", ""},
		{"ufw fixed dns", "ufw fixed", HookInput, dns("udp"), "accept", "-A ufw-user-input -i virbr0 -j ACCEPT", "ufw-user-input", ""},
		{"ufw fixed dhcp", "ufw fixed", HookInput, dhcp(), "accept", "-A ufw-user-input -i virbr0 -j ACCEPT", "ufw-user-input", ""},
		// libvirt's own nft table accepts, but that does not stop UFW's FORWARD chain in ip filter.
		{"libvirt10 accept does not stop ufw", "ufw+libvirt10", HookForward, egress(80), "drop", "policy DROP of FORWARD", "iptables-nft filter FORWARD", ""},
		{"libvirt10 + ufw fixed", "ufw fixed+libvirt10", HookForward, egress(80), "accept", "-A ufw-user-forward -i virbr0 -o eth0 -j ACCEPT", "iptables-nft filter ufw-user-forward", ""},
		{"libvirt10 + ufw nat", "ufw+libvirt10", HookPostrouting, egress(80), "accept", "meta l4proto tcp ip saddr 192.168.122.0/24 ip daddr != 192.168.122.0/24 masquerade to :1024-65535", "guest_nat", "masquerade"},
		{"libvirt10 alone egress", "libvirt10", HookForward, egress(80), "accept", "iifname \"virbr0\" accept", "guest_output", ""},
		{"libvirt10 alone inbound rejected", "libvirt10", HookForward, Packet{In: "eth0", Out: "virbr0", Src: ProbeAddr, Dst: guestIP, Proto: "tcp", DPort: 22, State: StateNew}, "reject", `oifname "virbr0" reject`, "guest_input", ""},
		{"libvirt10 alone return", "libvirt10", HookForward, returnPath(), "accept", "ct state established,related accept", "guest_input", ""},
		{"libvirt10 alone dns (no input chain)", "libvirt10", HookInput, dns("udp"), "accept", "no base chain", "", ""},
		{"docker blocks libvirt10", "docker+libvirt10", HookForward, egress(80), "drop", "policy DROP of FORWARD", "iptables-nft filter FORWARD", ""},
		{"docker blocks libvirt10 return", "docker+libvirt10", HookForward, returnPath(), "drop", "policy DROP of FORWARD", "filter FORWARD", ""},
		{"legacy docker drop behind nft accept", "legacy docker+libvirt9 nft", HookForward, egress(80), "drop", "policy DROP of FORWARD", "iptables-legacy filter FORWARD", ""},
		{"flushed egress", "flushed", HookForward, egress(80), "accept", "no base chain", "", ""},
		{"flushed no nat", "flushed", HookPostrouting, egress(80), "accept", "no source NAT", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := sc[tc.scenario]
			if st == nil {
				t.Fatalf("no scenario %q", tc.scenario)
			}
			r := st.Evaluate(tc.hook, tc.pkt)
			if r.Verdict != tc.verdict || !strings.Contains(r.Rule, tc.rule) || !strings.Contains(r.Chain, tc.chain) || r.NAT != tc.nat {
				t.Fatalf("got verdict=%s rule=%q chain=%q nat=%q\nwant verdict=%s rule~%q chain~%q nat=%q\ntrace:\n  %s",
					r.Verdict, r.Rule, r.Chain, r.NAT, tc.verdict, tc.rule, tc.chain, tc.nat, strings.Join(r.Trace, "\n  "))
			}
			if len(r.Trace) == 0 && r.Backend != "none" {
				t.Fatal("no trace")
			}
		})
	}
}

// TestEvaluateJumpSemantics checks goto/return: a RETURN in a chain entered by goto returns to the
// chain that jumped to the goto's caller, and a RETURN in a base chain applies its policy.
func TestEvaluateJumpSemantics(t *testing.T) {
	text := `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:A - [0:0]
:B - [0:0]
:C - [0:0]
-A FORWARD -j A
-A FORWARD -i virbr0 -j ACCEPT
-A A -g B
-A A -j DROP
-A B -j LOG --log-prefix "x"
-A B -p udp -j C
-A B -j RETURN
-A C -j REJECT
COMMIT
`
	ipt, err := ParseIptablesSave(text, "nft")
	if err != nil {
		t.Fatal(err)
	}
	st := &State{IPTablesNFT: ipt}
	r := st.Evaluate(HookForward, egress(80))
	if r.Verdict != "accept" || r.Rule != "-A FORWARD -i virbr0 -j ACCEPT" {
		t.Fatalf("tcp: goto+RETURN should come back to FORWARD: %+v", r)
	}
	p := egress(53)
	p.Proto = "udp"
	if r := st.Evaluate(HookForward, p); r.Verdict != "reject" || r.Rule != "-A C -j REJECT" {
		t.Fatalf("udp: want reject from C, got %+v", r)
	}
	p = egress(80)
	p.In = "eth1"
	if r := st.Evaluate(HookForward, p); r.Verdict != "drop" || r.Rule != "policy DROP of FORWARD" {
		t.Fatalf("other iface: want policy DROP, got %+v", r)
	}
}

// TestEvaluateBaseChainOrder: two nft base chains at the forward hook. Accept in the first does not
// stop the second; priority, not listing order, decides which runs first.
func TestEvaluateBaseChainOrder(t *testing.T) {
	js := `{"nftables":[
{"table":{"family":"inet","name":"late"}},
{"chain":{"family":"inet","table":"late","name":"fwd","type":"filter","hook":"forward","prio":10,"policy":"drop"}},
{"rule":{"family":"inet","table":"late","chain":"fwd","handle":1,"expr":[{"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":443}},{"accept":null}]}},
{"table":{"family":"ip","name":"early"}},
{"chain":{"family":"ip","table":"early","name":"fwd","type":"filter","hook":"forward","prio":-10,"policy":"accept"}},
{"rule":{"family":"ip","table":"early","chain":"fwd","handle":2,"expr":[{"match":{"op":"==","left":{"meta":{"key":"iifname"}},"right":"virbr0"}},{"accept":null}]}},
{"rule":{"family":"ip","table":"early","chain":"fwd","handle":3,"expr":[{"match":{"op":"in","left":{"ct":{"key":"state"}},"right":["established","related"]}},{"accept":null}]}},
{"table":{"family":"ip6","name":"v6only"}},
{"chain":{"family":"ip6","table":"v6only","name":"fwd","type":"filter","hook":"forward","prio":-20,"policy":"drop"}}
]}`
	nt, err := ParseNftJSON([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	st := &State{NFTables: nt}
	r := st.Evaluate(HookForward, egress(80))
	if r.Verdict != "drop" || r.Chain != "nftables inet late fwd" || r.Rule != "policy drop of fwd" {
		t.Fatalf("port 80: accept in 'early' must not stop 'late': %+v", r)
	}
	if !strings.Contains(strings.Join(r.Trace, "\n"), "nftables ip early fwd (priority -10)\nnftables ip early fwd: iifname \"virbr0\" accept\nnftables inet late fwd (priority 10)") {
		t.Fatalf("trace does not show priority order:\n%s", strings.Join(r.Trace, "\n"))
	}
	r = st.Evaluate(HookForward, egress(443))
	if r.Verdict != "accept" || r.Rule != "tcp dport 443 accept" || r.Chain != "nftables inet late fwd" {
		t.Fatalf("port 443: want accept, reported by the rule that saved it from late's drop policy: %+v", r)
	}
}

// TestEvaluateUncertain: a rule with a match the evaluator does not model is assumed not to match and
// is reported.
func TestEvaluateUncertain(t *testing.T) {
	text := "*filter\n:FORWARD DROP [0:0]\n-A FORWARD -m set --match-set guests src -j ACCEPT\n-A FORWARD -i virbr0 -j ACCEPT\nCOMMIT\n"
	ipt, err := ParseIptablesSave(text, "nft")
	if err != nil {
		t.Fatal(err)
	}
	r := (&State{IPTablesNFT: ipt}).Evaluate(HookForward, egress(80))
	if r.Verdict != "accept" || len(r.Uncertain) != 1 || !strings.Contains(r.Uncertain[0], "match-set") {
		t.Fatalf("%+v", r)
	}
}
