package service

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvmnet/kvmnet/agent/config"
	"github.com/kvmnet/kvmnet/agent/managedfile"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

type unmanagedStack struct{}

func (unmanagedStack) Annotate(_ context.Context, ifaces []*kvmnetv1.Interface) error {
	for _, in := range ifaces {
		in.StackDetail = "nm_device_state=Unmanaged nm_managed=false"
	}
	return nil
}

// TestGetStateSaysUdevPending: an interface NetworkManager leaves unmanaged while udev has not
// initialised it (hot-plugged moments ago) is reported with udev=pending, so the host says "not yet
// managed" instead of judging it; once udev's database has it, the mark is gone.
func TestGetStateSaysUdevPending(t *testing.T) {
	root := t.TempDir()
	for rel, content := range map[string]string{"run/udev/control": "", "sys/class/net/enp1s0/ifindex": "6\n"} {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	store, err := managedfile.New(managedfile.Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Root = root
	s, err := New(Options{Version: "v", Config: cfg, NM: &fakeNM{}, Links: guestLinks(), Stack: unmanagedStack{}, IPv6: fakeIPv6{},
		PkgConf: fakePkg{}, DNS: fakeDNS{}, QGA: fakeQGA{}, OS: fakeOS{}, Checks: fakeChecks{}, Files: store, Sysctl: &memSysctl{m: map[string]string{}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	st, err := s.GetState(context.Background(), &kvmnetv1.GetStateRequest{})
	if err != nil || !strings.HasSuffix(st.GetInterfaces()[0].GetStackDetail(), " udev=pending") {
		t.Fatalf("udev has not seen enp1s0: detail %q (%v)", st.GetInterfaces()[0].GetStackDetail(), err)
	}
	if err := os.MkdirAll(filepath.Join(root, "run/udev/data"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "run/udev/data/n6"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	st, _ = s.GetState(context.Background(), &kvmnetv1.GetStateRequest{})
	if strings.Contains(st.GetInterfaces()[0].GetStackDetail(), "udev") {
		t.Fatalf("udev initialised enp1s0: detail %q", st.GetInterfaces()[0].GetStackDetail())
	}
}
