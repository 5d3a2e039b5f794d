package libvirt

import (
	"net/url"
	"strings"
)

// DefaultURI is used when neither -c nor LIBVIRT_DEFAULT_URI is set.
const DefaultURI = "qemu:///system"

// EnvDefaultURI is the environment variable libvirt's own tools honour.
const EnvDefaultURI = "LIBVIRT_DEFAULT_URI"

// ResolveURI picks the connection URI: the -c/--connect flag when set, else LIBVIRT_DEFAULT_URI (read
// through getenv), else qemu:///system. It also returns where the URI came from ("flag", "env",
// "default") as evidence.
func ResolveURI(flag string, getenv func(string) string) (uri, from string) {
	if strings.TrimSpace(flag) != "" {
		return strings.TrimSpace(flag), "flag"
	}
	if getenv != nil {
		if v := strings.TrimSpace(getenv(EnvDefaultURI)); v != "" {
			return v, "env"
		}
	}
	return DefaultURI, "default"
}

// IsSession reports whether uri addresses a per-user QEMU daemon (qemu:///session, qemu+ssh://h/session,
// ...): guests there use user-mode networking, with no host bridge, no leases, and no way for the host
// to reach the guest.
func IsSession(uri string) bool {
	u, err := url.Parse(uri)
	if err != nil {
		return false
	}
	scheme := u.Scheme
	if i := strings.IndexByte(scheme, '+'); i >= 0 {
		scheme = scheme[:i]
	}
	return scheme == "qemu" && strings.TrimRight(u.Path, "/") == "/session"
}

// IsRemote reports whether uri names another host (qemu+ssh://host/system, qemu+tcp://...), where
// local checks (dnsmasq processes, bridges, sockets) describe the wrong machine.
func IsRemote(uri string) bool {
	u, err := url.Parse(uri)
	if err != nil {
		return false
	}
	if h := u.Hostname(); h != "" && h != "localhost" {
		return true
	}
	return strings.Contains(u.Scheme, "+ssh") || strings.Contains(u.Scheme, "+tcp") || strings.Contains(u.Scheme, "+tls")
}
