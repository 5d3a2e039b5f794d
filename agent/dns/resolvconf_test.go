package dns

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type layout struct {
	files map[string][]byte // guest path → content
	links map[string]string // guest path → link target (as written)
}

func (l layout) build(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for p, c := range l.files {
		abs := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(abs, c, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for p, target := range l.links {
		abs := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, abs); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestState(t *testing.T) {
	stub := fixture(t, "ubuntu-stub.conf")
	uplink := fixture(t, "resolved-uplink.conf")
	tests := []struct {
		name    string
		layout  layout
		mode    kvmnetv1.ResolverMode
		servers []string
		search  []string
		detail  string
	}{
		{
			name: "ubuntu: relative link to the resolved stub",
			layout: layout{
				files: map[string][]byte{resolvedStub: stub, resolvedUplnk: uplink},
				links: map[string]string{resolvConf: "../run/systemd/resolve/stub-resolv.conf"},
			},
			mode: kvmnetv1.ResolverMode_RESOLVER_MODE_SYSTEMD_RESOLVED, servers: []string{"192.168.122.1", "fe80::1%2"},
			detail: "rc_link=../run/systemd/resolve/stub-resolv.conf owner=systemd-resolved stub=127.0.0.53 upstream=/run/systemd/resolve/resolv.conf servers=2",
		},
		{
			name: "absolute link resolved inside the root, upstream not readable",
			layout: layout{
				files: map[string][]byte{resolvedStub: stub},
				links: map[string]string{resolvConf: "/run/systemd/resolve/stub-resolv.conf"},
			},
			mode: kvmnetv1.ResolverMode_RESOLVER_MODE_SYSTEMD_RESOLVED, servers: []string{StubAddr},
			detail: "rc_link=/run/systemd/resolve/stub-resolv.conf owner=systemd-resolved stub=127.0.0.53 upstream=unknown servers=1",
		},
		{
			name:   "stub copied into a plain file",
			layout: layout{files: map[string][]byte{resolvConf: []byte("nameserver 127.0.0.53\nsearch lan\n"), resolvedUplnk: uplink}},
			mode:   kvmnetv1.ResolverMode_RESOLVER_MODE_SYSTEMD_RESOLVED, servers: []string{"192.168.122.1", "fe80::1%2"}, search: []string{"lan"},
			detail: "stub=127.0.0.53 upstream=/run/systemd/resolve/resolv.conf servers=2",
		},
		{
			name: "resolved uplink mode",
			layout: layout{
				files: map[string][]byte{resolvedUplnk: uplink},
				links: map[string]string{resolvConf: "../run/systemd/resolve/resolv.conf"},
			},
			mode: kvmnetv1.ResolverMode_RESOLVER_MODE_SYSTEMD_RESOLVED, servers: []string{"192.168.122.1", "fe80::1%2"}, search: []string{"lan"},
			detail: "rc_link=../run/systemd/resolve/resolv.conf owner=systemd-resolved resolved_mode=uplink servers=2",
		},
		{
			name:   "NetworkManager wrote it",
			layout: layout{files: map[string][]byte{resolvConf: fixture(t, "nm-generated.conf")}},
			mode:   kvmnetv1.ResolverMode_RESOLVER_MODE_NETWORK_MANAGER, servers: []string{"192.168.122.1", "2001:db8::53"}, search: []string{"example.lan"},
			detail: "owner=NetworkManager servers=2",
		},
		{
			name: "NetworkManager rc-manager=symlink",
			layout: layout{
				files: map[string][]byte{"/run/NetworkManager/resolv.conf": []byte("nameserver 192.168.122.1\n")},
				links: map[string]string{resolvConf: "/run/NetworkManager/resolv.conf"},
			},
			mode: kvmnetv1.ResolverMode_RESOLVER_MODE_NETWORK_MANAGER, servers: []string{"192.168.122.1"},
			detail: "rc_link=/run/NetworkManager/resolv.conf servers=1",
		},
		{
			name:   "plain debian file",
			layout: layout{files: map[string][]byte{resolvConf: fixture(t, "debian-plain.conf")}},
			mode:   kvmnetv1.ResolverMode_RESOLVER_MODE_FILE, servers: []string{"10.0.0.2", "10.0.0.3"}, search: []string{"corp.example", "eng.corp.example"},
			detail: "servers=2",
		},
		{
			name:   "resolvconf(8) header names resolved later: first owner wins",
			layout: layout{files: map[string][]byte{resolvConf: fixture(t, "resolvconf.conf")}},
			mode:   kvmnetv1.ResolverMode_RESOLVER_MODE_FILE, servers: []string{"192.168.122.1"},
			detail: "owner=resolvconf servers=1",
		},
		{
			name:   "resolved header without the stub",
			layout: layout{files: map[string][]byte{resolvConf: fixture(t, "fake-resolved-header.conf")}},
			mode:   kvmnetv1.ResolverMode_RESOLVER_MODE_FILE, servers: []string{"1.1.1.1"},
			detail: "owner=systemd-resolved stub=no servers=1",
		},
		{
			name:   "no nameserver",
			layout: layout{files: map[string][]byte{resolvConf: fixture(t, "empty.conf")}},
			mode:   kvmnetv1.ResolverMode_RESOLVER_MODE_FILE,
			detail: "servers=none",
		},
		{
			name:   "missing",
			layout: layout{files: map[string][]byte{"/etc/hostname": []byte("g\n")}},
			mode:   kvmnetv1.ResolverMode_RESOLVER_MODE_MISSING,
			detail: "rc=missing",
		},
		{
			name:   "dangling link (resolved not running)",
			layout: layout{links: map[string]string{resolvConf: "../run/systemd/resolve/stub-resolv.conf"}},
			mode:   kvmnetv1.ResolverMode_RESOLVER_MODE_MISSING,
			detail: "rc_link=../run/systemd/resolve/stub-resolv.conf rc=dangling target=/run/systemd/resolve/stub-resolv.conf",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := New(tc.layout.build(t))
			if err != nil {
				t.Fatal(err)
			}
			st, err := r.State()
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode != tc.mode || !slices.Equal(st.Servers, tc.servers) || !slices.Equal(st.Search, tc.search) || st.Detail != tc.detail {
				t.Fatalf("got mode=%v servers=%q search=%q detail=%q\nwant mode=%v servers=%q search=%q detail=%q",
					st.Mode, st.Servers, st.Search, st.Detail, tc.mode, tc.servers, tc.search, tc.detail)
			}
		})
	}
}

func TestLinkLoop(t *testing.T) {
	root := layout{links: map[string]string{resolvConf: "/etc/resolv.conf"}}.build(t)
	r, _ := New(root)
	st, err := r.State()
	if err == nil || st.Mode != kvmnetv1.ResolverMode_RESOLVER_MODE_MISSING {
		t.Fatalf("loop: %v %v", st, err)
	}
}

func TestParseOptions(t *testing.T) {
	c := Parse(fixture(t, "debian-plain.conf"))
	if !slices.Equal(c.Options, []string{"timeout:2", "attempts:3", "rotate"}) {
		t.Fatalf("options %q", c.Options)
	}
	c = Parse([]byte("nameserver not-an-ip\nnameserver 10.1.1.1\n; comment\n"))
	if !slices.Equal(c.Nameservers, []string{"10.1.1.1"}) {
		t.Fatalf("nameservers %q", c.Nameservers)
	}
}
