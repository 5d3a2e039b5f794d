package link

import (
	"slices"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"google.golang.org/protobuf/proto"

	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
	"github.com/kvmnet/kvmnet/scripts/lab/testenv"
)

func TestDisplayName(t *testing.T) {
	for _, tc := range []struct{ raw, want string }{
		{"enp1s0", "enp1s0"},
		{"wlan-ü", "wlan-ü"},
		{"e\xff\xfe0", `e\xff\xfe0`},
		{"\xc3", `\xc3`},                 // a rune cut short
		{"ü\xc3(", `ü\xc3(`},             // valid, invalid, valid
		{"\xed\xa0\x80", `\xed\xa0\x80`}, // a surrogate, not UTF-8
	} {
		if got := DisplayName(tc.raw); got != tc.want {
			t.Errorf("DisplayName(%q) = %q, want %q", tc.raw, got, tc.want)
		}
	}
}

// TestInvalidUTF8NameInNetns: a real link whose name is not UTF-8 (the kernel allows it) is
// reported with its bytes escaped, next to the other links and its routes, and the whole view still
// marshals (before, proto.Marshal refused it and GetState failed with Internal).
func TestInvalidUTF8NameInNetns(t *testing.T) {
	testenv.Require(t, "ip")
	guest := testenv.NewNetns(t, "ag")
	host := testenv.NewNetns(t, "ag")
	bad := "e\xff\xfe0"
	guest.Veth(bad, host, "h0")
	guest.Veth("enp2s0", host, "h1")
	guest.MustRun("ip", "addr", "add", "10.77.9.2/24", "dev", bad)
	nsh, err := netns.GetFromName(guest.Name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nsh.Close() })
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	d, err := New(Options{Handle: h, Namespace: &nsh, SysRoot: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ifaces, routes, err := d.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, in := range ifaces {
		names = append(names, in.Name)
	}
	if !slices.Contains(names, `e\xff\xfe0`) || !slices.Contains(names, "enp2s0") {
		t.Fatalf("interfaces %q, want e\\xff\\xfe0 and enp2s0", names)
	}
	if !slices.ContainsFunc(routes, func(r *kvmnetv1.Route) bool { return r.Interface == `e\xff\xfe0` && r.Destination == "10.77.9.0/24" }) {
		t.Fatalf("routes %v lack 10.77.9.0/24 on the escaped name", routes)
	}
	if _, err := proto.Marshal(&kvmnetv1.GuestState{Interfaces: ifaces, Routes: routes}); err != nil {
		t.Fatalf("the view does not marshal: %v", err)
	}
}
