package apply

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kvmnet/kvmnet/agent/config"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

func ensure(mac string, v6 kvmnetv1.IPv6Method, wait uint32) *kvmnetv1.Action {
	return &kvmnetv1.Action{Action: &kvmnetv1.Action_EnsureDhcpProfile{EnsureDhcpProfile: &kvmnetv1.EnsureDHCPProfile{Mac: mac, Ipv6Method: v6, WaitIpv4Seconds: wait}}}
}

func removeConflicts(mac string) *kvmnetv1.Action {
	return &kvmnetv1.Action{Action: &kvmnetv1.Action_RemoveConflictingProfiles{RemoveConflictingProfiles: &kvmnetv1.RemoveConflictingProfiles{Mac: mac}}}
}

func setIPv6(disable bool) *kvmnetv1.Action {
	return &kvmnetv1.Action{Action: &kvmnetv1.Action_SetIpv6{SetIpv6: &kvmnetv1.SetIPv6{Disable: disable}}}
}

func forceIPv4(force bool) *kvmnetv1.Action {
	return &kvmnetv1.Action{Action: &kvmnetv1.Action_SetPackageManagerIpv4{SetPackageManagerIpv4: &kvmnetv1.SetPackageManagerIPv4{Force: force}}}
}

func restoreBackups() *kvmnetv1.Action {
	return &kvmnetv1.Action{Action: &kvmnetv1.Action_RestoreBackups{RestoreBackups: &kvmnetv1.RestoreBackups{}}}
}

func TestValidate(t *testing.T) {
	all := config.Default()
	noProfiles := all
	noProfiles.ManageProfiles = false
	noIPv6 := all
	noIPv6.ManageIPv6 = false
	noPkg := all
	noPkg.ManagePackageManager = false
	tests := []struct {
		name    string
		cfg     config.Config
		req     *kvmnetv1.ApplyRequest
		wantErr error
		errHas  string
		check   func(t *testing.T, r Request)
	}{
		{"defaults filled", all, &kvmnetv1.ApplyRequest{Actions: []*kvmnetv1.Action{ensure("52-54-00-AB-CD-EF", 0, 0)}}, nil, "", func(t *testing.T, r Request) {
			if r.RollbackTimeout != 60*time.Second || r.Actions[0].Ensure.MAC != "52:54:00:ab:cd:ef" || r.Actions[0].Ensure.WaitIPv4 != 30*time.Second || r.Actions[0].Ensure.IPv6Method != "" {
				t.Fatalf("%+v %+v", r, r.Actions[0].Ensure)
			}
		}},
		{"ipv6 disabled and wait", all, &kvmnetv1.ApplyRequest{RollbackTimeoutSeconds: 10, Actions: []*kvmnetv1.Action{ensure("52:54:00:ab:cd:ef", kvmnetv1.IPv6Method_IPV6_METHOD_DISABLED, 300)}}, nil, "", func(t *testing.T, r Request) {
			if r.RollbackTimeout != 10*time.Second || r.Actions[0].Ensure.IPv6Method != "disabled" || r.Actions[0].Ensure.WaitIPv4 != 300*time.Second {
				t.Fatalf("%+v", r.Actions[0].Ensure)
			}
		}},
		{"bad MAC", all, &kvmnetv1.ApplyRequest{Actions: []*kvmnetv1.Action{ensure("52:54:00:zz:00:01", 0, 0)}}, ErrInvalid, "six hex bytes", nil},
		{"EUI-64 refused", all, &kvmnetv1.ApplyRequest{Actions: []*kvmnetv1.Action{removeConflicts("52:54:00:00:00:00:00:01")}}, ErrInvalid, "MAC", nil},
		{"empty MAC", all, &kvmnetv1.ApplyRequest{Actions: []*kvmnetv1.Action{removeConflicts("")}}, ErrInvalid, "MAC", nil},
		{"timeout too small", all, &kvmnetv1.ApplyRequest{RollbackTimeoutSeconds: 9, Actions: []*kvmnetv1.Action{setIPv6(true)}}, ErrInvalid, "outside 10..3600", nil},
		{"timeout too big", all, &kvmnetv1.ApplyRequest{RollbackTimeoutSeconds: 3601, Actions: []*kvmnetv1.Action{setIPv6(true)}}, ErrInvalid, "outside 10..3600", nil},
		{"wait too long", all, &kvmnetv1.ApplyRequest{Actions: []*kvmnetv1.Action{ensure("52:54:00:00:00:01", 0, 301)}}, ErrInvalid, "wait_ipv4_seconds 301", nil},
		{"unknown ipv6 method", all, &kvmnetv1.ApplyRequest{Actions: []*kvmnetv1.Action{ensure("52:54:00:00:00:01", 42, 0)}}, ErrInvalid, "ipv6_method", nil},
		{"no actions", all, &kvmnetv1.ApplyRequest{}, ErrInvalid, "no actions", nil},
		{"empty action", all, &kvmnetv1.ApplyRequest{Actions: []*kvmnetv1.Action{{}}}, ErrInvalid, "empty", nil},
		{"too many actions", all, &kvmnetv1.ApplyRequest{Actions: make([]*kvmnetv1.Action, 33)}, ErrInvalid, "at most 32", nil},
		{"profiles opted out", noProfiles, &kvmnetv1.ApplyRequest{Actions: []*kvmnetv1.Action{setIPv6(true), ensure("52:54:00:00:00:01", 0, 0)}}, ErrOptedOut, "action 2 (ensure_dhcp_profile) needs manage_profiles: true", nil},
		{"remove opted out", noProfiles, &kvmnetv1.ApplyRequest{Actions: []*kvmnetv1.Action{removeConflicts("52:54:00:00:00:01")}}, ErrOptedOut, "manage_profiles", nil},
		{"ipv6 opted out", noIPv6, &kvmnetv1.ApplyRequest{Actions: []*kvmnetv1.Action{setIPv6(false)}}, ErrOptedOut, "manage_ipv6", nil},
		{"package manager opted out", noPkg, &kvmnetv1.ApplyRequest{Actions: []*kvmnetv1.Action{forceIPv4(true)}}, ErrOptedOut, "manage_package_manager", nil},
		{"restore always allowed", noPkg, &kvmnetv1.ApplyRequest{Actions: []*kvmnetv1.Action{restoreBackups()}}, nil, "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Validate(tc.req, tc.cfg)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("err = %v, want %v containing %q", err, tc.wantErr, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
}
