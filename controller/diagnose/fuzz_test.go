package diagnose

import (
	"encoding/json"
	"testing"

	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
	"google.golang.org/protobuf/proto"
)

// FuzzGuestState feeds arbitrary guest-reported state and check results (a guest is untrusted: its
// agent may be old, broken or hostile) into Diagnose: it must never panic, and
// every finding must stay complete and one line.
func FuzzGuestState(f *testing.F) {
	for _, base := range []func() *kvmnetv1.GuestState{
		func() *kvmnetv1.GuestState { return healthyNAT().Guests[0].State },
		func() *kvmnetv1.GuestState { return multiNIC().Guests[0].State },
		func() *kvmnetv1.GuestState {
			s := goldenSnapshot()
			return s.Guests[1].State
		},
	} {
		st, _ := proto.Marshal(base())
		ck, _ := proto.Marshal(&kvmnetv1.RunChecksResponse{Results: okChecks("192.168.122.1")})
		f.Add(st, ck)
	}
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, stateBytes, checkBytes []byte) {
		var st kvmnetv1.GuestState
		if proto.Unmarshal(stateBytes, &st) != nil {
			return
		}
		var ck kvmnetv1.RunChecksResponse
		if proto.Unmarshal(checkBytes, &ck) != nil {
			return
		}
		snap := multiNIC()
		snap.Guests[0].State = &st
		snap.Guests[0].Checks = ck.GetResults()
		r := Diagnose(snap)
		for _, fd := range r.All() {
			if fd.Code == "" || fd.Severity == "" || fd.Subject == "" || fd.Fix == "" {
				t.Fatalf("incomplete finding: %+v", fd)
			}
		}
		// Escaping for the terminal is controller/output's (FuzzStatusTable there); here the report
		// must at least encode.
		if _, err := json.Marshal(r); err != nil {
			t.Fatal(err)
		}
	})
}
