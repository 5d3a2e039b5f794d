package dns

import (
	"context"
	"fmt"
	"net"
	"net/netip"
)

// ServerResolver returns a resolver that sends every query to server (an IP address, optionally
// with a port: "192.168.122.1", "[fe80::1%enp1s0]:53", "127.0.0.1:5353"), bypassing resolv.conf.
// Used to ask whether one server (e.g. the DHCP-provided one) answers.
func ServerResolver(server string) (*net.Resolver, error) {
	ap, err := ParseServer(server)
	if err != nil {
		return nil, err
	}
	addr := ap.String()
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}, nil
}

// ParseServer parses a DNS server as an IP address with an optional port (default 53).
func ParseServer(s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap, nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(a, 53), nil
	}
	return netip.AddrPort{}, fmt.Errorf("invalid DNS server %q: want an IP address, optionally with :port", s)
}
