package qga

import (
	"net"
	"net/netip"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Bounds on what a guest may send back. A real guest stays far below them; a hostile one gets
// truncated, never a larger allocation or a longer terminal line.
const (
	// MaxReplyBytes caps one reply before it is parsed (a guest-exec-status with 64 KiB of output,
	// base64-encoded, fits).
	MaxReplyBytes = 1 << 20
	// MaxInterfaces caps the interfaces kept from guest-network-get-interfaces.
	MaxInterfaces = 64
	// MaxAddresses caps the addresses kept per interface.
	MaxAddresses = 32
	// MaxNameLen caps interface names (Linux allows 15 bytes).
	MaxNameLen = 32
	// MaxTextLen caps OS strings, host names and error descriptions.
	MaxTextLen = 128
	// MaxOutputBytes caps decoded guest-exec output.
	MaxOutputBytes = 64 << 10
)

// Text returns s trimmed, cut to max runes, with invalid UTF-8 and control or format characters
// (newlines, ESC, bidi overrides) replaced by '?': safe for a terminal, a file, a metric label.
func Text(s string, max int) string {
	s = strings.TrimSpace(s)
	var b strings.Builder
	n := 0
	for i := 0; i < len(s) && n < max; {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		if r == utf8.RuneError || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			r = '?'
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

// ifName keeps an interface name only if it looks like one: printable ASCII without spaces or '/'.
func ifName(s string) string {
	if s == "" || len(s) > MaxNameLen {
		return Text(s, MaxNameLen)
	}
	for _, r := range s {
		if r <= ' ' || r > '~' || r == '/' {
			return Text(s, MaxNameLen)
		}
	}
	return s
}

// macAddr returns a canonical lower-case 6-byte MAC, or "" when s is not one.
func macAddr(s string) string {
	if len(s) > 64 {
		return ""
	}
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		return ""
	}
	return hw.String()
}

// prefixOf returns "ADDR/PREFIX" for a valid address of the family with a valid prefix length.
func prefixOf(addr string, prefix int, v6 bool) (string, bool) {
	if len(addr) > 64 {
		return "", false
	}
	// IPv6 link-local addresses may carry a zone ("fe80::1%eth0"): drop it.
	if i := strings.IndexByte(addr, '%'); i >= 0 {
		addr = addr[:i]
	}
	a, err := netip.ParseAddr(addr)
	if err != nil || a.Is6() != v6 || a.Is4In6() {
		return "", false
	}
	if prefix < 0 || prefix > a.BitLen() {
		prefix = a.BitLen() // a guest that sends no or a bogus prefix: the host address alone
	}
	return netip.PrefixFrom(a, prefix).String(), true
}
