package output

import (
	"bytes"
	"testing"

	"github.com/kvmnet/kvmnet/controller/diagnose"
	"github.com/kvmnet/kvmnet/controller/fix"
	"github.com/kvmnet/kvmnet/controller/fixplan"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// TestFixPrinterGolden: every kind of fix event as `guests fix` and `host fix` print it off a
// terminal.
func TestFixPrinterGolden(t *testing.T) {
	var b bytes.Buffer
	p := NewFixPrinter(&b, false)
	for _, e := range []fix.Event{
		fix.Waiting{What: "reading host state and the agent of vm1"},
		fix.Waited{},
		fix.GuestPlanned{Plan: fixplan.GuestPlan{Domain: "vm1",
			Steps:    []fixplan.GuestStep{{Code: diagnose.CodeGuestNoIPv4, Summary: "ensure DHCP profile kvm-dhcp-enp1s0"}},
			HostSide: []diagnose.Finding{{Code: diagnose.CodeUFWRoutedBlocked, Summary: "UFW drops routed traffic"}},
			Skipped:  []fixplan.Skipped{{Finding: diagnose.Finding{Code: diagnose.CodeGuestDNSFailure}, Reason: "not something the agent can change"}}}},
		fix.ChangesPreviewed{Domain: "vm1", Changes: []*kvmnetv1.Change{{Kind: "profile", Target: "kvm-dhcp-enp1s0",
			Summary: "create", Diff: "+ipv4.method=auto\n+connection.interface-name=enp1s0\n"}}},
		fix.Waiting{What: "applying 1 change(s) in vm1"},
		fix.Waited{Outcome: "applied under checkpoint cp-1 (rollback at 12:00:00)"},
		fix.Note{Text: "verified and confirmed: vm1 is fixed"},
		fix.HostStepPlanned{N: 1, Of: 2, Step: fixplan.HostStep{Codes: []diagnose.Code{diagnose.CodeNetworkInactive}, Summary: "start network default",
			Warning: "DHCP may blip"}, Commands: []string{"virsh -c qemu:///system net-start default"}},
		fix.HostStepSkipped{},
		fix.HostStepPlanned{N: 2, Of: 2, Step: fixplan.HostStep{Codes: []diagnose.Code{diagnose.CodeIPForwardOff}, Summary: "enable ip_forward"},
			Err: "no hostnet"},
		fix.HostStepDone{},
		fix.HostStepDone{Err: "libvirt said no"},
		fix.ManualFinding{Finding: diagnose.Finding{Code: diagnose.CodeNetworkDHCPMissing, Summary: "no DHCP", Fix: "virsh net-edit default"}},
		fix.GuestSideFindings{Count: 2},
		fix.StillReported{Finding: diagnose.Finding{Code: diagnose.CodeNetworkInactive, Subject: "network default", Summary: "inactive"}},
	} {
		p.Event(e)
	}
	p.Prompt("Run this step?")
	checkGolden(t, "fix_events", b.Bytes())
}
