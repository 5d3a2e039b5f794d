package sysctl

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/kvmnet/kvmnet/agent/managedfile"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
	"github.com/kvmnet/kvmnet/scripts/lab/testenv/goldenfile"
)

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	goldenfile.Check(t, filepath.Join("testdata", name), got)
}

func TestRenderDisableGolden(t *testing.T) {
	golden(t, "99-kvmnet-disable-ipv6.conf.golden", managedfile.WithHeader(RenderDisable()))
}

// procRoot lays out <root>/proc/sys/net/ipv6/conf/<scope>/disable_ipv6 with the given values.
func procRoot(t *testing.T, values map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for scope, v := range values {
		p := filepath.Join(root, confDir, scope, "disable_ipv6")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestState(t *testing.T) {
	nic := func(v6 ...string) []*kvmnetv1.Interface {
		return []*kvmnetv1.Interface{{Name: "enp1s0", Ipv6: v6}}
	}
	defRoute := []*kvmnetv1.Route{{Family: 6, Destination: "default", Gateway: "fe80::1", Interface: "enp1s0"}}
	v4Only := []*kvmnetv1.Route{{Family: 4, Destination: "default", Gateway: "192.168.122.1", Interface: "enp1s0"}}
	enabled := map[string]string{"all": "0", "default": "0", "enp1s0": "0"}
	tests := []struct {
		name       string
		proc       map[string]string // nil: no IPv6 in the kernel
		persistent bool
		ifaces     []*kvmnetv1.Interface
		routes     []*kvmnetv1.Route
		want       *kvmnetv1.IPv6State
	}{
		{
			name: "usable global address and default route", proc: enabled,
			ifaces: nic("fe80::5054:ff:fe00:1/64", "2001:db8::5/64"), routes: defRoute,
			want: &kvmnetv1.IPv6State{Usable: true, HasGlobalAddress: true, HasDefaultRoute: true, InterfaceDisabled: map[string]bool{"enp1s0": false}},
		},
		{
			name: "link-local only (libvirt NAT without IPv6)", proc: enabled,
			ifaces: nic("fe80::5054:ff:fe00:1/64"), routes: v4Only,
			want: &kvmnetv1.IPv6State{InterfaceDisabled: map[string]bool{"enp1s0": false}},
		},
		{
			name: "ULA without default route", proc: enabled,
			ifaces: nic("fd00:1::5/64"), routes: v4Only,
			want: &kvmnetv1.IPv6State{HasGlobalAddress: true, InterfaceDisabled: map[string]bool{"enp1s0": false}},
		},
		{
			name: "disabled by kvmnet", proc: map[string]string{"all": "1", "default": "1", "enp1s0": "1"}, persistent: true,
			ifaces: nic(), routes: v4Only,
			want: &kvmnetv1.IPv6State{AllDisabled: true, DefaultDisabled: true, PersistentDisableFile: true, InterfaceDisabled: map[string]bool{"enp1s0": true}},
		},
		{
			name: "only the interface disabled", proc: map[string]string{"all": "0", "default": "0", "enp1s0": "1"},
			ifaces: nic(), routes: v4Only,
			want: &kvmnetv1.IPv6State{InterfaceDisabled: map[string]bool{"enp1s0": true}},
		},
		{
			name: "no IPv6 in the kernel", proc: nil,
			ifaces: nic(), routes: v4Only,
			want: &kvmnetv1.IPv6State{AllDisabled: true, DefaultDisabled: true, InterfaceDisabled: map[string]bool{"enp1s0": true}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			if tc.proc != nil {
				root = procRoot(t, tc.proc)
			}
			if tc.persistent {
				p := filepath.Join(root, PersistentFile)
				_ = os.MkdirAll(filepath.Dir(p), 0o755)
				_ = os.WriteFile(p, managedfile.WithHeader(RenderDisable()), 0o644)
			}
			r, _ := NewReader(root)
			got, err := r.State(tc.ifaces, tc.routes)
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != tc.want.String() {
				t.Fatalf("got  %v\nwant %v", got, tc.want)
			}
		})
	}
}
