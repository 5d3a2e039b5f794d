package apply

import (
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/kvmnet/kvmnet/agent/config"
	"github.com/kvmnet/kvmnet/agent/managedfile"
	"github.com/kvmnet/kvmnet/agent/nm"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// fuzzInputs is a guest with two NICs, a stale eth0 profile, kvmnet's profile on enp1s0, a
// managed sysctl file and apt installed: every action has something to do.
func fuzzInputs() Inputs {
	return Inputs{
		NICs: []NIC{{Name: "enp1s0", MAC: "52:54:00:00:00:01"}, {Name: "enp2s0", MAC: "52:54:00:00:00:02"}},
		NM: nm.State{Status: nm.Status{Running: true, Version: "1.42.4"},
			Devices: []nm.Device{{Path: "/dev/1", Interface: "enp1s0", MAC: "52:54:00:00:00:01", Managed: true, State: 100},
				{Path: "/dev/2", Interface: "enp2s0", MAC: "52:54:00:00:00:02", Managed: true, State: 30}},
			Profiles: []nm.Profile{
				{Path: "/p/1", ID: "Wired connection 1", UUID: "u1", Type: nm.EthernetType, InterfaceName: "eth0", IPv4Method: "auto", Autoconnect: true},
				{Path: "/p/2", ID: "kvm-dhcp-enp1s0", UUID: "u2", Type: nm.EthernetType, InterfaceName: "enp1s0", MAC: "52:54:00:00:00:01",
					IPv4Method: "auto", IPv6Method: "ignore", Active: true, ActiveDevice: "enp1s0", ManagedByKvmnet: true},
			}},
		Files:        map[string][]byte{SysctlFile: []byte(managedfile.Header + "\nnet.ipv6.conf.all.disable_ipv6 = 1\n")},
		Managed:      []ManagedFile{{Path: SysctlFile}},
		AptInstalled: true,
		Sysctl:       map[string]string{SysctlKeys[0]: "1", SysctlKeys[1]: "0"},
	}
}

// FuzzApplyPlan feeds arbitrary bytes, decoded as the ApplyRequest the agent receives on the wire,
// through Validate and Compute. Neither may panic; a validated request keeps its limits, and a plan
// may only touch kvmnet's files, the IPv6 sysctls and profiles of NICs the guest has.
func FuzzApplyPlan(f *testing.F) {
	seed := func(r *kvmnetv1.ApplyRequest) {
		b, err := proto.Marshal(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	act := func(a ...*kvmnetv1.Action) *kvmnetv1.ApplyRequest { return &kvmnetv1.ApplyRequest{Actions: a} }
	ensure := func(mac string) *kvmnetv1.Action {
		return &kvmnetv1.Action{Action: &kvmnetv1.Action_EnsureDhcpProfile{EnsureDhcpProfile: &kvmnetv1.EnsureDHCPProfile{Mac: mac, WaitIpv4Seconds: 5}}}
	}
	seed(act(ensure("52:54:00:00:00:02")))
	seed(act(ensure("52:54:00:00:00:01"), &kvmnetv1.Action{Action: &kvmnetv1.Action_RemoveConflictingProfiles{RemoveConflictingProfiles: &kvmnetv1.RemoveConflictingProfiles{Mac: "52:54:00:00:00:01"}}}))
	seed(act(&kvmnetv1.Action{Action: &kvmnetv1.Action_SetIpv6{SetIpv6: &kvmnetv1.SetIPv6{Disable: true}}}))
	seed(act(&kvmnetv1.Action{Action: &kvmnetv1.Action_SetIpv6{SetIpv6: &kvmnetv1.SetIPv6{}}},
		&kvmnetv1.Action{Action: &kvmnetv1.Action_SetPackageManagerIpv4{SetPackageManagerIpv4: &kvmnetv1.SetPackageManagerIPv4{Force: true}}}))
	seed(act(&kvmnetv1.Action{Action: &kvmnetv1.Action_RestoreBackups{RestoreBackups: &kvmnetv1.RestoreBackups{}}}))
	seed(&kvmnetv1.ApplyRequest{DryRun: true, RollbackTimeoutSeconds: 5, Actions: []*kvmnetv1.Action{ensure("zz:zz")}})
	seed(&kvmnetv1.ApplyRequest{RollbackTimeoutSeconds: 4000, Actions: []*kvmnetv1.Action{{}}})
	cfg := config.Default()
	macs := []string{"52:54:00:00:00:01", "52:54:00:00:00:02"}
	f.Fuzz(func(t *testing.T, b []byte) {
		var req kvmnetv1.ApplyRequest
		if proto.Unmarshal(b, &req) != nil {
			return
		}
		r, err := Validate(&req, cfg)
		if err != nil {
			return
		}
		if len(r.Actions) == 0 || len(r.Actions) > MaxActions || r.RollbackTimeout < MinRollbackTimeout || r.RollbackTimeout > MaxRollbackTimeout {
			t.Fatalf("validated request out of its limits: %d actions, rollback %s", len(r.Actions), r.RollbackTimeout)
		}
		plan, err := Compute(r, fuzzInputs())
		if err != nil {
			return
		}
		for _, s := range plan.Steps {
			switch s.Kind {
			case OpWriteFile, OpRemoveFile, OpRestoreFile:
				if !slices.Contains([]string{SysctlFile, AptFile, DnfFile}, s.Path) {
					t.Fatalf("plan touches %q, not one of kvmnet's files", s.Path)
				}
			case OpSetSysctl:
				if !slices.Contains(SysctlKeys, s.Key) || (s.Value != "0" && s.Value != "1") {
					t.Fatalf("plan sets sysctl %s = %q", s.Key, s.Value)
				}
			case OpAddProfile, OpActivate:
				if !slices.Contains(macs, strings.ToLower(s.Spec.MAC)) {
					t.Fatalf("plan creates or activates a profile for MAC %q the guest lacks", s.Spec.MAC)
				}
			}
			if s.Change == nil || s.Change.GetSummary() == "" {
				t.Fatalf("step %v has no change summary", s.Kind)
			}
		}
	})
}
