package checks

import (
	"testing"

	"google.golang.org/protobuf/proto"

	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// FuzzValidate feeds arbitrary bytes, decoded as the RunChecksRequest the agent receives on the
// wire, through Validate (nothing runs). It must not panic, and what it accepts must respect the
// limits the runner relies on: at most MaxChecks checks, each with a known kind and family, a
// bounded printable name and a timeout within MaxTimeoutMS.
func FuzzValidate(f *testing.F) {
	for _, r := range []*kvmnetv1.RunChecksRequest{
		{Checks: []*kvmnetv1.Check{{Name: "gw", Kind: kvmnetv1.CheckKind_CHECK_KIND_PING, Family: kvmnetv1.Family_FAMILY_V4}}},
		{Checks: []*kvmnetv1.Check{{Name: "dns", Kind: kvmnetv1.CheckKind_CHECK_KIND_DNS, Target: "deb.debian.org", TimeoutMs: 2000}}},
		{Checks: []*kvmnetv1.Check{{Name: "tcp", Kind: kvmnetv1.CheckKind_CHECK_KIND_TCP, Target: "[2001:db8::1]:443", Family: kvmnetv1.Family_FAMILY_V6}}},
		{Checks: []*kvmnetv1.Check{{Name: "http", Kind: kvmnetv1.CheckKind_CHECK_KIND_HTTP, Target: "http://203.0.113.1/x?y=1", TimeoutMs: 30000}}},
		{Checks: []*kvmnetv1.Check{{Name: "bad\x00", Kind: 99, Target: "file:///etc/shadow", TimeoutMs: 1 << 31}}},
		{Checks: []*kvmnetv1.Check{{Kind: kvmnetv1.CheckKind_CHECK_KIND_TCP, Target: "-oProxyCommand=x:22"}}},
	} {
		b, err := proto.Marshal(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var req kvmnetv1.RunChecksRequest
		if proto.Unmarshal(b, &req) != nil {
			return
		}
		if Validate(&req) != nil {
			return
		}
		if len(req.GetChecks()) > MaxChecks {
			t.Fatalf("accepted %d checks", len(req.GetChecks()))
		}
		for _, c := range req.GetChecks() {
			if _, ok := kvmnetv1.CheckKind_name[int32(c.GetKind())]; !ok || c.GetKind() == kvmnetv1.CheckKind_CHECK_KIND_UNSPECIFIED {
				t.Fatalf("accepted kind %d", c.GetKind())
			}
			if _, ok := kvmnetv1.Family_name[int32(c.GetFamily())]; !ok {
				t.Fatalf("accepted family %d", c.GetFamily())
			}
			if len(c.GetName()) > maxName || !printable(c.GetName()) || len(c.GetTarget()) > maxTarget || c.GetTimeoutMs() > MaxTimeoutMS {
				t.Fatalf("accepted %q target %d bytes timeout %d", c.GetName(), len(c.GetTarget()), c.GetTimeoutMs())
			}
		}
	})
}
