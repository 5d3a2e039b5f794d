package diagnose

import (
	"slices"
	"strings"
	"testing"

	"github.com/kvmnet/kvmnet/controller/snapshot"
)

// qgaGuest turns healthyNAT's guest into one without a kvmnet agent whose qemu-guest-agent answers
// with the given interfaces (nil: qemu-guest-agent did not answer either).
func qgaGuest(ifs []snapshot.QGAInterface, qgaErr string) snapshot.Snapshot {
	s := healthyNAT()
	s.Domains[0].Channels = []snapshot.Channel{{Name: snapshot.ChannelQemuGA, Type: "unix", State: "connected"}}
	g := snapshot.Guest{Domain: "vm1", Transport: snapshot.TransportNone}
	if qgaErr != "" {
		g.QGA = &snapshot.QGAView{Error: qgaErr}
	} else {
		g.QGA = &snapshot.QGAView{Answered: true, HostName: "vm1", Interfaces: ifs,
			OS: &snapshot.QGAOS{ID: "debian", PrettyName: "Debian GNU/Linux 12 (bookworm)", Machine: "x86_64"}}
	}
	s.Guests = []snapshot.Guest{g}
	return s
}

func TestQGAView(t *testing.T) {
	for _, tc := range []struct {
		name     string
		snap     func() snapshot.Snapshot
		want     []Code
		notWant  []Code
		ifname   string
		agent    string
		evidence map[Code]string
	}{
		{
			name: "healthy through qga: only kvmnet_agent_missing",
			snap: func() snapshot.Snapshot {
				return qgaGuest([]snapshot.QGAInterface{{Name: "enp1s0", MAC: mac1, IPv4: []string{"192.168.122.50/24"}}}, "")
			},
			want:    []Code{CodeKvmnetAgentMissing},
			notWant: []Code{CodeGuestAgentMissingChannel, CodeGuestNoDefaultRoute, CodeGuestDNSFailure, CodeGuestNoIPv4},
			ifname:  "enp1s0", agent: AgentQGA,
			evidence: map[Code]string{CodeKvmnetAgentMissing: "arch=x86_64"},
		},
		{
			name:   "no IPv4 (profile bound to a missing name)",
			snap:   func() snapshot.Snapshot { return qgaGuest([]snapshot.QGAInterface{{Name: "enp1s0", MAC: mac1}}, "") },
			want:   []Code{CodeKvmnetAgentMissing, CodeGuestNoIPv4},
			ifname: "enp1s0", agent: AgentQGA,
			evidence: map[Code]string{CodeGuestNoIPv4: "ifname=enp1s0"},
		},
		{
			name: "lease mismatch",
			snap: func() snapshot.Snapshot {
				return qgaGuest([]snapshot.QGAInterface{{Name: "ens3", MAC: mac1, IPv4: []string{"192.168.122.99/24"}}}, "")
			},
			want:   []Code{CodeKvmnetAgentMissing, CodeGuestIPLeaseMismatch},
			ifname: "ens3", agent: AgentQGA,
		},
		{
			name: "wrong subnet",
			snap: func() snapshot.Snapshot {
				return qgaGuest([]snapshot.QGAInterface{{Name: "eth0", MAC: mac1, IPv4: []string{"10.9.9.9/24"}}}, "")
			},
			want:   []Code{CodeKvmnetAgentMissing, CodeGuestStaticWrongSubnet},
			ifname: "eth0", agent: AgentQGA,
		},
		{
			name: "NIC not seen: the guest's interface names are listed",
			snap: func() snapshot.Snapshot {
				return qgaGuest([]snapshot.QGAInterface{{Name: "ens9", MAC: "52:54:00:99:99:99", IPv4: []string{"192.168.122.5/24"}}}, "")
			},
			want:     []Code{CodeKvmnetAgentMissing, CodeGuestNICNotSeen},
			agent:    AgentQGA,
			evidence: map[Code]string{CodeGuestNICNotSeen: "ens9=52:54:00:99:99:99"},
		},
		{
			name: "neither agent: host facts and the lease, and says so",
			snap: func() snapshot.Snapshot {
				return qgaGuest(nil, "qemu-guest-agent does not answer (not installed or not running in the guest)")
			},
			want:     []Code{CodeGuestAgentMissingChannel},
			notWant:  []Code{CodeKvmnetAgentMissing},
			agent:    "none",
			evidence: map[Code]string{CodeGuestAgentMissingChannel: "view=host facts only"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Diagnose(tc.snap())
			g, ok := r.Guest("vm1")
			if !ok {
				t.Fatal("no guest report")
			}
			codes := Codes(g.Findings)
			for _, c := range tc.want {
				if !slices.Contains(codes, c) {
					t.Errorf("missing %s in %v", c, codes)
				}
			}
			for _, c := range tc.notWant {
				if slices.Contains(codes, c) {
					t.Errorf("unexpected %s in %v", c, codes)
				}
			}
			if g.NICs[0].GuestIfname != tc.ifname {
				t.Errorf("guest_ifname = %q, want %q", g.NICs[0].GuestIfname, tc.ifname)
			}
			if g.NICs[0].LeaseIPv4 != "192.168.122.50" {
				t.Errorf("lease lost: %+v", g.NICs[0])
			}
			if got := g.AgentColumn(); got != tc.agent {
				t.Errorf("agent column = %q, want %q", got, tc.agent)
			}
			for code, want := range tc.evidence {
				found := false
				for _, f := range g.Findings {
					if f.Code == code && strings.Contains(strings.Join(f.Evidence, " "), want) {
						found = true
					}
				}
				if !found {
					t.Errorf("%s: no evidence %q in %+v", code, want, g.Findings)
				}
			}
			for _, f := range g.Findings {
				if f.Code == CodeKvmnetAgentMissing && !strings.HasPrefix(f.Fix, "kvmnetctl guests install-agent vm1") {
					t.Errorf("fix = %q", f.Fix)
				}
				if f.Code == CodeGuestNoIPv4 && !strings.HasPrefix(f.Fix, "kvmnetctl guests install-agent vm1, then kvmnetctl guests fix vm1") {
					t.Errorf("no-ipv4 fix = %q", f.Fix)
				}
			}
		})
	}
}
