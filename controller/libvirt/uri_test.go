package libvirt

import (
	"strings"
	"testing"
)

func TestResolveURI(t *testing.T) {
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == EnvDefaultURI {
				return v
			}
			return ""
		}
	}
	tests := []struct {
		name, flag, env, want, from string
	}{
		{"flag wins", "qemu:///session", "test:///default", "qemu:///session", "flag"},
		{"env when no flag", "", "qemu+ssh://h/system", "qemu+ssh://h/system", "env"},
		{"default", "", "", DefaultURI, "default"},
		{"blank flag ignored", "  ", "", DefaultURI, "default"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, from := ResolveURI(tc.flag, env(tc.env))
			if got != tc.want || from != tc.from {
				t.Fatalf("ResolveURI = %q,%q want %q,%q", got, from, tc.want, tc.from)
			}
		})
	}
}

func TestIsSessionRemote(t *testing.T) {
	tests := []struct {
		uri             string
		session, remote bool
	}{
		{"qemu:///system", false, false},
		{"qemu:///system?socket=/tmp/x/libvirt-sock", false, false},
		{"qemu:///session", true, false},
		{"qemu+unix:///session", true, false},
		{"qemu+ssh://alice@h/session", true, true},
		{"qemu+ssh://root@h/system", false, true},
		{"qemu+tcp://10.0.0.1/system", false, true},
		{"test:///default", false, false},
		{"%%%", false, false},
	}
	for _, tc := range tests {
		t.Run(tc.uri, func(t *testing.T) {
			if s := IsSession(tc.uri); s != tc.session {
				t.Errorf("IsSession = %v", s)
			}
			if r := IsRemote(tc.uri); r != tc.remote {
				t.Errorf("IsRemote = %v", r)
			}
		})
	}
}

func TestConnectHint(t *testing.T) {
	tests := []struct{ name, uri, msg, want string }{
		{"daemon not running", "qemu:///system", "Failed to connect socket to '/var/run/libvirt/libvirt-sock': No such file or directory", "is libvirtd running?"},
		{"session daemon", "qemu:///session", "Failed to connect socket to '/run/user/1000/libvirt/libvirt-sock': Connection refused", "per-user"},
		{"permission", "qemu:///system", "Failed to connect socket to '/var/run/libvirt/libvirt-sock': Permission denied", "libvirt group"},
		{"no driver", "foo:///x", "no connection driver available for foo:///x", "no driver"},
		{"other", "qemu:///system", "weird", "check the URI"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if h := connectHint(tc.uri, tc.msg); !strings.Contains(h, tc.want) {
				t.Fatalf("hint %q lacks %q", h, tc.want)
			}
		})
	}
}
