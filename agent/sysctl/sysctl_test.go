package sysctl

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvmnet/kvmnet/agent/files"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Fatalf("%s differs from golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestRenderDisableGolden(t *testing.T) {
	golden(t, "99-kvmnet-disable-ipv6.conf.golden", files.WithHeader(RenderDisable()))
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

func TestLiveWrites(t *testing.T) {
	ws, err := LiveWrites(true, []string{"eth0.100", "enp1s0", "enp1s0"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range ws {
		got = append(got, w.Key+"="+w.Value+"@"+w.Path)
	}
	want := []string{
		"net.ipv6.conf.default.disable_ipv6=1@proc/sys/net/ipv6/conf/default/disable_ipv6",
		"net.ipv6.conf.all.disable_ipv6=1@proc/sys/net/ipv6/conf/all/disable_ipv6",
		"net.ipv6.conf.enp1s0.disable_ipv6=1@proc/sys/net/ipv6/conf/enp1s0/disable_ipv6",
		"net.ipv6.conf.eth0/100.disable_ipv6=1@proc/sys/net/ipv6/conf/eth0.100/disable_ipv6",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, bad := range []string{"", "../../x", "a/b", "all", "default", "sixteen-chars-xx", "eth 0", ".."} {
		if _, err := LiveWrites(false, []string{bad}); err == nil {
			t.Errorf("interface name %q accepted", bad)
		}
	}
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
				_ = os.WriteFile(p, files.WithHeader(RenderDisable()), 0o644)
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

type recorder struct {
	inner  Writer
	writes []string
}

func (r *recorder) WriteSysctl(w Write) error {
	r.writes = append(r.writes, w.Key+"="+w.Value)
	return r.inner.WriteSysctl(w)
}

func newManager(t *testing.T, proc map[string]string) (*Manager, *recorder, string) {
	t.Helper()
	root := procRoot(t, proc)
	store, err := files.New(files.Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := NewProcWriter(root)
	rec := &recorder{inner: pw}
	r, _ := NewReader(root)
	m, err := NewManager(store, rec, r)
	if err != nil {
		t.Fatal(err)
	}
	return m, rec, root
}

func value(t *testing.T, root, scope string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, confDir, scope, "disable_ipv6"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func kinds(cs []*kvmnetv1.Change) string {
	var s []string
	for _, c := range cs {
		s = append(s, c.Kind+":"+c.Target)
	}
	return strings.Join(s, " ")
}

func TestManagerDisableEnable(t *testing.T) {
	m, rec, root := newManager(t, map[string]string{"all": "0", "default": "0", "enp1s0": "0", "enp2s0": "1"})
	ifaces := []string{"enp1s0", "enp2s0"}

	plan, err := m.Plan(true, ifaces)
	if err != nil {
		t.Fatal(err)
	}
	wantPlan := "file:" + PersistentFile + " sysctl:net.ipv6.conf.default.disable_ipv6 sysctl:net.ipv6.conf.all.disable_ipv6 sysctl:net.ipv6.conf.enp1s0.disable_ipv6"
	if kinds(plan) != wantPlan {
		t.Fatalf("plan = %s\nwant   %s", kinds(plan), wantPlan)
	}
	if len(rec.writes) != 0 || value(t, root, "all") != "0" {
		t.Fatal("Plan changed something")
	}
	if _, err := os.Stat(filepath.Join(root, PersistentFile)); err == nil {
		t.Fatal("Plan wrote the file")
	}

	got, err := m.Apply(true, ifaces)
	if err != nil {
		t.Fatal(err)
	}
	if kinds(got) != wantPlan {
		t.Fatalf("apply = %s", kinds(got))
	}
	if !strings.Contains(got[0].Diff, "+net.ipv6.conf.all.disable_ipv6 = 1") {
		t.Fatalf("file diff: %s", got[0].Diff)
	}
	for _, s := range []string{"all", "default", "enp1s0", "enp2s0"} {
		if value(t, root, s) != "1" {
			t.Fatalf("%s not disabled", s)
		}
	}
	content, _ := os.ReadFile(filepath.Join(root, PersistentFile))
	golden(t, "99-kvmnet-disable-ipv6.conf.golden", content)

	again, err := m.Apply(true, ifaces)
	if err != nil || len(again) != 0 {
		t.Fatalf("second apply: %s %v", kinds(again), err)
	}

	// Someone else's file also disables IPv6: re-enabling says so and leaves it alone.
	other := filepath.Join(root, "etc/sysctl.d/99-disable-ipv6.conf")
	_ = os.WriteFile(other, []byte("net.ipv6.conf.all.disable_ipv6 = 1\n"), 0o644)
	got, err = m.Apply(false, ifaces)
	if err != nil {
		t.Fatal(err)
	}
	wantEnable := "file:" + PersistentFile + " sysctl:net.ipv6.conf.default.disable_ipv6 sysctl:net.ipv6.conf.all.disable_ipv6 " +
		"sysctl:net.ipv6.conf.enp1s0.disable_ipv6 sysctl:net.ipv6.conf.enp2s0.disable_ipv6 note:/etc/sysctl.d/99-disable-ipv6.conf"
	if kinds(got) != wantEnable {
		t.Fatalf("enable = %s\nwant     %s", kinds(got), wantEnable)
	}
	if _, err := os.Stat(filepath.Join(root, PersistentFile)); err == nil {
		t.Fatal("persistent file still there after enable")
	}
	if b, _ := os.ReadFile(other); string(b) != "net.ipv6.conf.all.disable_ipv6 = 1\n" {
		t.Fatal("other file touched")
	}
}

func TestEnableRefusesForeignFile(t *testing.T) {
	m, _, root := newManager(t, map[string]string{"all": "1", "default": "1"})
	p := filepath.Join(root, PersistentFile)
	_ = os.MkdirAll(filepath.Dir(p), 0o755)
	_ = os.WriteFile(p, []byte("net.ipv6.conf.all.disable_ipv6 = 1\n"), 0o644)
	for name, f := range map[string]func(bool, []string) ([]*kvmnetv1.Change, error){"plan": m.Plan, "apply": m.Apply} {
		if _, err := f(false, nil); err == nil || !strings.Contains(err.Error(), "remove it by hand") && !strings.Contains(err.Error(), "not managed") {
			t.Fatalf("%s: err = %v", name, err)
		}
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatal("foreign file removed")
	}
}

func TestCaptureRestoreLive(t *testing.T) {
	m, _, root := newManager(t, map[string]string{"all": "0", "default": "0", "enp1s0": "0"})
	saved, err := m.Capture([]string{"enp1s0", "gone0"})
	if err != nil {
		t.Fatal(err)
	}
	if len(saved) != 3 {
		t.Fatalf("captured %v", saved)
	}
	if _, err := m.Apply(true, []string{"enp1s0"}); err != nil {
		t.Fatal(err)
	}
	if err := m.RestoreLive(saved); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"all", "default", "enp1s0"} {
		if value(t, root, s) != "0" {
			t.Fatalf("%s not restored", s)
		}
	}
}

func TestProcWriterRefusesOtherPaths(t *testing.T) {
	pw, _ := NewProcWriter(t.TempDir())
	for _, p := range []string{"etc/passwd", "proc/sys/../../etc/passwd", "/proc/sys/x"} {
		if err := pw.WriteSysctl(Write{Key: "x", Path: p, Value: "1"}); err == nil || !strings.Contains(err.Error(), "refusing") {
			t.Errorf("path %q: err = %v", p, err)
		}
	}
}
