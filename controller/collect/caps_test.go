package collect

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/kvmnet/kvmnet/controller/diagnose"
	"github.com/kvmnet/kvmnet/controller/snapshot"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

const worstMAC = "52:54:00:00:00:01"

// worstReply is the hostile GetState the caps exist for: 200,000 interfaces and 100,000 profiles
// bound to interfaces that do not exist, all under the 4 MiB message cap.
func worstReply(tb testing.TB) *kvmnetv1.GuestState {
	tb.Helper()
	st := &kvmnetv1.GuestState{Hostname: strings.Repeat("h", 64<<10),
		NetworkManager: &kvmnetv1.NetworkManagerState{Running: true}, Config: &kvmnetv1.AgentConfig{AllowApply: true}}
	st.Interfaces = append(st.Interfaces, &kvmnetv1.Interface{Name: "enp1s0", Mac: worstMAC, OperState: "up"})
	for i := range 200_000 {
		st.Interfaces = append(st.Interfaces, &kvmnetv1.Interface{Name: fmt.Sprintf("%x", i)})
	}
	for i := range 100_000 {
		p := &kvmnetv1.Profile{Id: fmt.Sprintf("%x", i), InterfaceName: "x", BoundToMissingInterface: true}
		if i < MaxListItems {
			p.Type, p.Ipv4Method = "802-3-ethernet", "auto" // those a cap keeps become findings
		}
		st.NetworkManager.Profiles = append(st.NetworkManager.Profiles, p)
	}
	if n := proto.Size(st); n >= 4<<20 {
		tb.Fatalf("worst reply is %d bytes: over the 4 MiB message cap, the agent could not send it", n)
	}
	return st
}

func worstSnapshot(st *kvmnetv1.GuestState) snapshot.Snapshot {
	return snapshot.Snapshot{
		Networks: snapshot.Networks{{Name: "default", Active: true, Autostart: true, Forward: snapshot.ForwardNAT, Bridge: "virbr0"}},
		Domains: []snapshot.Domain{{Name: "vm1", State: "running",
			NICs: []snapshot.DomainNIC{{MAC: worstMAC, Type: "network", Network: "default", Bridge: "virbr0"}}}},
		Guests: []snapshot.Guest{{Domain: "vm1", Transport: snapshot.TransportUnix, Address: "unix:/x", Reachable: true, State: st}},
	}
}

// TestBoundCaps: after Bound the worst reply holds at most MaxListItems per list and
// MaxStringBytes per string, says what was cut, and its diagnosis stays small: no finding, no
// evidence line and not the whole report grows with what the guest sent.
func TestBoundCaps(t *testing.T) {
	st := worstReply(t)
	BoundState(st)
	if len(st.GetInterfaces()) != MaxListItems || len(st.GetNetworkManager().GetProfiles()) != MaxListItems {
		t.Fatalf("kept %d interfaces, %d profiles; want %d each", len(st.GetInterfaces()), len(st.GetNetworkManager().GetProfiles()), MaxListItems)
	}
	if len(st.GetHostname()) > MaxStringBytes+len("…") || !strings.HasSuffix(st.GetHostname(), "…") {
		t.Fatalf("hostname kept %d bytes", len(st.GetHostname()))
	}
	notes := strings.Join(st.GetCollectionErrors(), "\n")
	for _, want := range []string{"kvmnet.v1.GuestState.interfaces: 200001 items, kept 256", "kvmnet.v1.NetworkManagerState.profiles: 100000 items, kept 256"} {
		if !strings.Contains(notes, want) {
			t.Errorf("collection errors lack %q:\n%s", want, notes)
		}
	}
	r := diagnose.Diagnose(worstSnapshot(st))
	for _, f := range r.All() {
		if len(f.Summary) > 4<<10 {
			t.Errorf("%s summary is %d bytes", f.Code, len(f.Summary))
		}
		for _, e := range f.Evidence {
			if len(e) > 4<<10 {
				t.Errorf("%s evidence line is %d bytes: %.100s", f.Code, len(e), e)
			}
		}
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 1<<20 {
		t.Errorf("report is %d bytes", len(b))
	}
	if !strings.Contains(string(b), "… and ") {
		t.Error("no joined list says how many it left out")
	}
	t.Logf("%d findings, report %d bytes", len(r.All()), len(b))
}

// BenchmarkWorstReply is the diagnosis budget under a hostile guest (target: < 50 MiB and < 1 s
// per reply): bound the worst reply under the message cap, then diagnose it.
func BenchmarkWorstReply(b *testing.B) {
	base := worstReply(b)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		st := proto.Clone(base).(*kvmnetv1.GuestState)
		b.StartTimer()
		BoundState(st)
		_ = diagnose.Diagnose(worstSnapshot(st))
	}
}
