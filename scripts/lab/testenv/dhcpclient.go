package testenv

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"runtime"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
)

// DHCPLease is what DHCPRequest obtained.
type DHCPLease struct {
	// IP offered and acknowledged.
	IP net.IP
	// Server is the DHCP server identifier.
	Server net.IP
}

// DHCPRequest runs one DHCP DISCOVER/OFFER/REQUEST/ACK exchange on ifname inside ns, as a guest would,
// with the broadcast flag set so no address is needed on the interface. It does not configure the
// interface (no script, nothing written to /etc): it only makes the server hand out a real lease, e.g.
// for libvirt's dnsmasq to record. mac must be ifname's MAC; hostname is sent as option 12.
func DHCPRequest(ns *Netns, ifname string, mac net.HardwareAddr, hostname string, timeout time.Duration) (DHCPLease, error) {
	fd, err := socketIn(ns.Name, ifname)
	if err != nil {
		return DHCPLease{}, err
	}
	f := os.NewFile(uintptr(fd), "dhcp-client")
	pc, err := net.FilePacketConn(f)
	_ = f.Close()
	if err != nil {
		return DHCPLease{}, fmt.Errorf("dhcp client: %w", err)
	}
	defer func() { _ = pc.Close() }()
	_ = pc.SetDeadline(time.Now().Add(timeout))

	xid := make([]byte, 4)
	_, _ = rand.Read(xid)
	bcast := &net.UDPAddr{IP: net.IPv4bcast, Port: 67}
	send := func(msgType byte, extra ...[]byte) error {
		_, err := pc.WriteTo(dhcpPacket(xid, mac, msgType, hostname, extra...), bcast)
		return err
	}
	recv := func(want byte) ([]byte, map[byte][]byte, error) {
		buf := make([]byte, 1500)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return nil, nil, fmt.Errorf("dhcp client on %s: waiting for message type %d: %w", ifname, want, err)
			}
			p := buf[:n]
			if n < 240 || p[0] != 2 || !bytes.Equal(p[4:8], xid) {
				continue
			}
			opts := dhcpOptions(p[240:])
			if t := opts[53]; len(t) == 1 {
				if t[0] == 6 {
					return nil, nil, fmt.Errorf("dhcp client on %s: NAK", ifname)
				}
				if t[0] == want {
					return p, opts, nil
				}
			}
		}
	}
	if err := send(1); err != nil {
		return DHCPLease{}, fmt.Errorf("dhcp discover: %w", err)
	}
	offer, opts, err := recv(2)
	if err != nil {
		return DHCPLease{}, err
	}
	ip := net.IP(append([]byte(nil), offer[16:20]...))
	server := net.IP(append([]byte(nil), opts[54]...))
	if err := send(3, append([]byte{50, 4}, ip.To4()...), append([]byte{54, 4}, server.To4()...)); err != nil {
		return DHCPLease{}, fmt.Errorf("dhcp request: %w", err)
	}
	ack, _, err := recv(5)
	if err != nil {
		return DHCPLease{}, err
	}
	return DHCPLease{IP: net.IP(append([]byte(nil), ack[16:20]...)), Server: server}, nil
}

// socketIn creates a UDP socket bound to 0.0.0.0:68 on ifname inside the named netns. Sockets stay in
// the namespace they were created in, so only the creation runs on a thread switched into it.
func socketIn(nsName, ifname string) (int, error) {
	type res struct {
		fd  int
		err error
	}
	ch := make(chan res, 1)
	go func() {
		runtime.LockOSThread()
		// The thread is left locked on purpose: if switching back failed it must die with the goroutine.
		orig, err := netns.Get()
		if err != nil {
			ch <- res{-1, err}
			return
		}
		defer func() { _ = orig.Close() }()
		target, err := netns.GetFromName(nsName)
		if err != nil {
			ch <- res{-1, fmt.Errorf("open netns %s: %w", nsName, err)}
			return
		}
		defer func() { _ = target.Close() }()
		if err := netns.Set(target); err != nil {
			ch <- res{-1, fmt.Errorf("enter netns %s: %w", nsName, err)}
			return
		}
		fd, err := udp68(ifname)
		if err2 := netns.Set(orig); err2 == nil {
			runtime.UnlockOSThread()
		}
		ch <- res{fd, err}
	}()
	r := <-ch
	return r.fd, r.err
}

func udp68(ifname string) (int, error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, syscall.IPPROTO_UDP)
	if err != nil {
		return -1, fmt.Errorf("dhcp socket: %w", err)
	}
	for _, o := range []int{syscall.SO_REUSEADDR, syscall.SO_BROADCAST} {
		if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, o, 1); err != nil {
			_ = syscall.Close(fd)
			return -1, fmt.Errorf("dhcp socket option: %w", err)
		}
	}
	if err := syscall.BindToDevice(fd, ifname); err != nil {
		_ = syscall.Close(fd)
		return -1, fmt.Errorf("dhcp socket bind to %s: %w", ifname, err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Port: 68}); err != nil {
		_ = syscall.Close(fd)
		return -1, fmt.Errorf("dhcp socket bind :68: %w", err)
	}
	return fd, nil
}

func dhcpPacket(xid []byte, mac net.HardwareAddr, msgType byte, hostname string, extra ...[]byte) []byte {
	p := make([]byte, 240, 300)
	p[0], p[1], p[2] = 1, 1, 6 // BOOTREQUEST, ethernet, hlen
	copy(p[4:8], xid)
	binary.BigEndian.PutUint16(p[10:12], 0x8000) // broadcast flag
	copy(p[28:44], mac)
	copy(p[236:240], []byte{99, 130, 83, 99})
	p = append(p, 53, 1, msgType)
	p = append(p, 61, byte(1+len(mac)), 1)
	p = append(p, mac...)
	if hostname != "" {
		p = append(p, 12, byte(len(hostname)))
		p = append(p, hostname...)
	}
	for _, e := range extra {
		p = append(p, e...)
	}
	p = append(p, 55, 3, 1, 3, 6, 255)
	return p
}

func dhcpOptions(b []byte) map[byte][]byte {
	out := map[byte][]byte{}
	for i := 0; i < len(b); {
		code := b[i]
		if code == 255 {
			break
		}
		if code == 0 {
			i++
			continue
		}
		if i+1 >= len(b) || i+2+int(b[i+1]) > len(b) {
			break
		}
		out[code] = b[i+2 : i+2+int(b[i+1])]
		i += 2 + int(b[i+1])
	}
	return out
}
