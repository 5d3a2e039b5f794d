package fixplan

import (
	"strings"
	"testing"

	"github.com/kvmnet/kvmnet/controller/diagnose"
	"github.com/kvmnet/kvmnet/controller/snapshot"
)

func bridgedDrop(bridge, backend string) diagnose.Finding {
	return diagnose.Finding{Code: diagnose.CodeBridgeNetfilterDrop, Severity: diagnose.SeverityError, Subject: "host",
		Evidence: []string{"bridge=" + bridge, "backend=" + backend, "rule=policy DROP of FORWARD"}}
}

func TestHostPlanBridgeNetfilter(t *testing.T) {
	docker := world(func(s *snapshot.Snapshot) { s.Firewall.Docker = true })
	tests := []struct {
		name     string
		s        snapshot.Snapshot
		findings []diagnose.Finding
		opts     HostOptions
		steps    []HostStep // Kind, Bridge, Backend, Chain compared
		manual   int
	}{
		{"docker: DOCKER-USER of the world that dropped", docker, []diagnose.Finding{bridgedDrop("br0", "iptables-legacy")}, HostOptions{},
			[]HostStep{{Kind: StepBridgedAccept, Bridge: "br0", Backend: "iptables-legacy", Chain: "DOCKER-USER"}}, 0},
		{"no docker: FORWARD", world(), []diagnose.Finding{bridgedDrop("br0", "iptables-nft")}, HostOptions{},
			[]HostStep{{Kind: StepBridgedAccept, Bridge: "br0", Backend: "iptables-nft", Chain: "FORWARD"}}, 0},
		{"two bridges: two steps", docker, []diagnose.Finding{bridgedDrop("br0", "iptables-nft"), bridgedDrop("br1", "iptables-nft")}, HostOptions{},
			[]HostStep{{Kind: StepBridgedAccept, Bridge: "br0", Backend: "iptables-nft", Chain: "DOCKER-USER"},
				{Kind: StepBridgedAccept, Bridge: "br1", Backend: "iptables-nft", Chain: "DOCKER-USER"}}, 0},
		{"--bridge-nf-off: one sysctl step for every bridge", docker, []diagnose.Finding{bridgedDrop("br0", "iptables-nft"), bridgedDrop("br1", "nftables")},
			HostOptions{BridgeNFOff: true}, []HostStep{{Kind: StepBridgeNFOff}}, 0},
		{"native nftables drop: manual", docker, []diagnose.Finding{bridgedDrop("br0", "nftables")}, HostOptions{}, nil, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := HostWith(tc.s, tc.findings, []diagnose.Code{diagnose.CodeBridgeNetfilterDrop}, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Steps) != len(tc.steps) || len(p.Manual) != tc.manual {
				t.Fatalf("plan %+v", p)
			}
			for i, w := range tc.steps {
				g := p.Steps[i]
				if g.Kind != w.Kind || g.Bridge != w.Bridge || g.Backend != w.Backend || g.Chain != w.Chain || g.Warning == "" {
					t.Fatalf("step %d = %+v, want %+v (with a trade-off warning)", i, g, w)
				}
			}
			for _, st := range p.Steps {
				if st.Kind == StepBridgeNFOff && !strings.Contains(st.Warning, "dockerd sets the sysctl back") {
					t.Fatalf("sysctl step without its trade-off: %q", st.Warning)
				}
			}
		})
	}
}
