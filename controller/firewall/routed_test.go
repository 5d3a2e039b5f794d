package firewall

import (
	"net/netip"
	"strings"
	"testing"
)

// Networks without NAT, over rule sets captured in the lab (scripts/lab/routed): libvirt's route
// mode accepts the subnet out by the forward device and back in without conntrack, and adds no
// source NAT; open mode has no rule at all, so the FORWARD policy decides.
func TestEvaluateRoutedOpen(t *testing.T) {
	routed := &State{IPTablesNFT: mustIPT(t, "libvirt9-routed-open.rules", "nft")}
	reject := &State{IPTablesNFT: mustIPT(t, "libvirt9-routed-reject.rules", "nft")}
	rtGuest := netip.MustParseAddr("192.168.150.150")
	opGuest := netip.MustParseAddr("192.168.151.100")
	out := func(in string, src netip.Addr, outIf string) Packet {
		return Packet{In: in, Out: outIf, Src: src, Dst: ProbeAddr, Proto: "tcp", SPort: 40000, DPort: 80, State: StateNew}
	}
	back := func(outIf string, dst netip.Addr, st string) Packet {
		return Packet{In: "up0", Out: outIf, Src: ProbeAddr, Dst: dst, Proto: "tcp", SPort: 80, DPort: 40000, State: st}
	}
	tests := []struct {
		name    string
		st      *State
		hook    Hook
		pkt     Packet
		verdict string
		rule    string
		nat     string
	}{
		{"routed egress by the forward dev", routed, HookForward, out("virbr-rt", rtGuest, "up0"), "accept", "-A LIBVIRT_FWO -s 192.168.150.0/24 -i virbr-rt -o up0 -j ACCEPT", ""},
		{"routed egress by another dev", routed, HookForward, out("virbr-rt", rtGuest, "eth1"), "reject", "-A LIBVIRT_FWO -i virbr-rt -j REJECT", ""},
		{"routed return", routed, HookForward, back("virbr-rt", rtGuest, StateEstablished), "accept", "-A LIBVIRT_FWI -d 192.168.150.0/24 -i up0 -o virbr-rt -j ACCEPT", ""},
		// Route mode opens the subnet to new connections from upstream too (no conntrack match).
		{"routed inbound new", routed, HookForward, back("virbr-rt", rtGuest, StateNew), "accept", "-A LIBVIRT_FWI -d 192.168.150.0/24 -i up0 -o virbr-rt -j ACCEPT", ""},
		{"routed no source nat", routed, HookPostrouting, out("virbr-rt", rtGuest, "up0"), "accept", "no source NAT", ""},
		{"open egress by policy", routed, HookForward, out("virbr-op", opGuest, "up0"), "accept", "policy ACCEPT of FORWARD", ""},
		{"open return by policy", routed, HookForward, back("virbr-op", opGuest, StateEstablished), "accept", "policy ACCEPT of FORWARD", ""},
		{"open no source nat", routed, HookPostrouting, out("virbr-op", opGuest, "up0"), "accept", "no source NAT", ""},
		{"nat network still masqueraded", routed, HookPostrouting, out("virbr0", guestIP, "up0"), "accept", "MASQUERADE", "masquerade"},
		{"routed egress rejected", reject, HookForward, out("virbr-rt", rtGuest, "up0"), "reject", "-A FORWARD -s 192.168.150.0/24 -j REJECT --reject-with icmp-port-unreachable", ""},
		{"reject leaves the nat network alone", reject, HookForward, out("virbr0", guestIP, "up0"), "accept", "-A LIBVIRT_FWO -s 192.168.122.0/24 -i virbr0 -j ACCEPT", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.st.Evaluate(tc.hook, tc.pkt)
			if r.Verdict != tc.verdict || !strings.Contains(r.Rule, tc.rule) || r.NAT != tc.nat {
				t.Fatalf("got verdict=%s rule=%q nat=%q, want %s %q %q\ntrace:\n  %s", r.Verdict, r.Rule, r.NAT, tc.verdict, tc.rule, tc.nat,
					strings.Join(r.Trace, "\n  "))
			}
		})
	}
}
