package service

import (
	"context"
	"strings"
	"testing"

	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
	"github.com/kvmnet/kvmnet/scripts/lab/testenv"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// foreignKvmDHCP has kvmnet's profile name but was made by someone else: no user data marker, and
// settings kvmnet must not inherit (DNS ignored from DHCP, a fixed server).
const foreignKvmDHCP = `[connection]
id=kvm-dhcp-enp1s0
uuid=6f2f0d6e-5555-4555-8555-000000000005
type=ethernet
interface-name=enp1s0
autoconnect=false

[ipv4]
method=auto
ignore-auto-dns=true
dns=192.0.2.53;
`

// TestForeignKvmDHCPProfileNotAdopted: against real NetworkManager, a kvm-dhcp-enp1s0 without
// kvmnet's marker is refused by EnsureDHCPProfile alone (FailedPrecondition naming the profile,
// nothing changed) and replaced when the plan removes conflicts first: the new profile carries the
// marker and none of the foreign settings.
func TestForeignKvmDHCPProfileNotAdopted(t *testing.T) {
	testenv.Require(t, binaries...)
	lab := testenv.NewNMLab(t, testenv.NMLabOptions{
		NICs: []testenv.GuestNIC{{Name: "enp1s0", MAC: macA, OnBridge: true}},
		NM:   testenv.NMOptions{Keyfiles: map[string]string{"kvm-dhcp-enp1s0.nmconnection": foreignKvmDHCP}},
	})
	s := realService(t, lab)
	ctx := context.Background()
	waitManaged(t, s, "enp1s0")
	if p := profiles(t, s)["kvm-dhcp-enp1s0"]; p == nil || p.ManagedByKvmnet {
		t.Fatalf("foreign profile as reported: %v", p)
	}

	_, err := s.Apply(ctx, ensureReq(macA, 20, 60, false))
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "6f2f0d6e-5555-4555-8555-000000000005") ||
		!strings.Contains(err.Error(), "managed_by_kvmnet=false") {
		t.Fatalf("Ensure alone on a foreign kvm-dhcp profile = %v, want FailedPrecondition with evidence", err)
	}
	if p := profiles(t, s)["kvm-dhcp-enp1s0"]; p == nil || p.Uuid != "6f2f0d6e-5555-4555-8555-000000000005" || p.ManagedByKvmnet {
		t.Fatalf("the refused Apply changed the profile: %v", p)
	}

	resp, err := s.Apply(ctx, ensureReq(macA, 20, 60, true))
	if err != nil {
		t.Fatalf("%v\n%s", err, lab.Report())
	}
	if _, err := s.Confirm(ctx, &kvmnetv1.ConfirmRequest{CheckpointId: resp.CheckpointId}); err != nil {
		t.Fatal(err)
	}
	var all []string
	for _, c := range resp.Changes {
		all = append(all, c.Summary)
	}
	if !strings.Contains(strings.Join(all, "\n"), "not kvmnet's marker") {
		t.Errorf("changes do not say why the profile was replaced:\n%s", strings.Join(all, "\n"))
	}
	p := profiles(t, s)["kvm-dhcp-enp1s0"]
	if p == nil || !p.ManagedByKvmnet || p.Uuid == "6f2f0d6e-5555-4555-8555-000000000005" || !p.Active {
		t.Fatalf("after the fix: %v", p)
	}
}
