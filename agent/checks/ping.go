package checks

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Pinger sends one ICMP echo and waits for the reply.
type Pinger interface {
	// Ping returns the round-trip time to dst (a v6 link-local address carries its zone) and the
	// socket kind used ("datagram" or "raw").
	Ping(ctx context.Context, dst netip.Addr) (rtt time.Duration, mode string, err error)
}

// PingMode selects the ICMP socket kind.
type PingMode int

const (
	// PingAuto tries an unprivileged datagram socket (allowed by net.ipv4.ping_group_range) and
	// falls back to a raw socket (needs CAP_NET_RAW, i.e. root).
	PingAuto PingMode = iota
	// PingDatagram uses only the unprivileged datagram socket.
	PingDatagram
	// PingRaw uses only the raw socket.
	PingRaw
)

// ICMPPinger is the real Pinger. Sockets are created on the calling goroutine's thread, so their
// network namespace is the caller's.
type ICMPPinger struct {
	// Mode selects the socket kind.
	Mode PingMode
}

func (p ICMPPinger) listen(v6 bool) (*icmp.PacketConn, string, error) {
	dgram, raw := "udp4", "ip4:icmp"
	laddr := "0.0.0.0"
	if v6 {
		dgram, raw, laddr = "udp6", "ip6:ipv6-icmp", "::"
	}
	var dgErr error
	if p.Mode != PingRaw {
		c, err := icmp.ListenPacket(dgram, laddr)
		if err == nil {
			return c, "datagram", nil
		}
		dgErr = err
		if p.Mode == PingDatagram {
			return nil, "", fmt.Errorf("unprivileged ICMP socket: %w (net.ipv4.ping_group_range does not include this group)", err)
		}
	}
	c, err := icmp.ListenPacket(raw, laddr)
	if err != nil {
		if dgErr != nil {
			return nil, "", fmt.Errorf("no ICMP socket: unprivileged: %v; raw: %w (run as root or widen net.ipv4.ping_group_range)", dgErr, err)
		}
		return nil, "", fmt.Errorf("raw ICMP socket: %w", err)
	}
	return c, "raw", nil
}

// Ping implements Pinger.
func (p ICMPPinger) Ping(ctx context.Context, dst netip.Addr) (time.Duration, string, error) {
	dst = dst.Unmap()
	v6 := dst.Is6()
	conn, mode, err := p.listen(v6)
	if err != nil {
		return 0, "", err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()

	var nonce [16]byte
	_, _ = rand.Read(nonce[:])
	id := int(binary.BigEndian.Uint16(nonce[0:2]))
	seq := int(binary.BigEndian.Uint16(nonce[2:4]))
	var typ icmp.Type = ipv4.ICMPTypeEcho
	proto := 1
	if v6 {
		typ, proto = ipv6.ICMPTypeEchoRequest, 58
	}
	msg := icmp.Message{Type: typ, Body: &icmp.Echo{ID: id, Seq: seq, Data: nonce[:]}}
	b, err := msg.Marshal(nil)
	if err != nil {
		return 0, mode, err
	}
	ip := net.IP(dst.AsSlice())
	var to net.Addr = &net.IPAddr{IP: ip, Zone: dst.Zone()}
	if mode == "datagram" {
		to = &net.UDPAddr{IP: ip, Zone: dst.Zone()}
	}
	start := time.Now()
	if _, err := conn.WriteTo(b, to); err != nil {
		return 0, mode, fmt.Errorf("send echo to %s: %w", dst, err)
	}
	buf := make([]byte, 1500)
	for {
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, syscall.ETIMEDOUT) || isTimeout(err) {
				return 0, mode, fmt.Errorf("no echo reply from %s within the deadline", dst)
			}
			return 0, mode, fmt.Errorf("receive from %s: %w", dst, err)
		}
		rtt := time.Since(start)
		m, err := icmp.ParseMessage(proto, buf[:n])
		if err != nil {
			continue
		}
		if m.Type != ipv4.ICMPTypeEchoReply && m.Type != ipv6.ICMPTypeEchoReply {
			continue
		}
		echo, ok := m.Body.(*icmp.Echo)
		if !ok || echo.Seq != seq || string(echo.Data) != string(nonce[:]) {
			continue // someone else's reply (raw sockets see every echo reply)
		}
		// The kernel rewrites the ID of datagram sockets to their local port: match by seq and
		// payload only there.
		if mode == "raw" && echo.ID != id {
			continue
		}
		return rtt, mode, nil
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
