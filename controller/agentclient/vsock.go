package agentclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/mdlayher/socket"
	"golang.org/x/sys/unix"
)

// Privileged source ports tried, highest first, when dialing vsock.
const (
	firstSourcePort = 1023
	lastSourcePort  = 512
)

// bindPrivileged binds with the first free privileged source port, using bind (a seam for tests).
func bindPrivileged(bind func(port uint32) error) (uint32, error) {
	for p := uint32(firstSourcePort); p >= lastSourcePort; p-- {
		err := bind(p)
		if err == nil {
			return p, nil
		}
		if errors.Is(err, unix.EADDRINUSE) {
			continue
		}
		if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
			return 0, fmt.Errorf("bind vsock source port %d: %w (only root may use ports < 1024, and the agent accepts no others: run kvmnetctl as root)", p, err)
		}
		return 0, fmt.Errorf("bind vsock source port %d: %w", p, err)
	}
	return 0, fmt.Errorf("bind vsock source port: all ports %d..%d in use", lastSourcePort, firstSourcePort)
}

// dialVsock connects to cid:port from a privileged source port. It opens an AF_VSOCK socket: it is
// never run by the tests.
func dialVsock(ctx context.Context, cid, port uint32) (net.Conn, error) {
	c, err := socket.Socket(unix.AF_VSOCK, unix.SOCK_STREAM, 0, "vsock", nil)
	if err != nil {
		return nil, fmt.Errorf("vsock socket: %w (is the vhost_vsock module loaded on the host?)", err)
	}
	src, err := bindPrivileged(func(p uint32) error {
		return c.Bind(&unix.SockaddrVM{CID: unix.VMADDR_CID_ANY, Port: p})
	})
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	if _, err := c.Connect(ctx, &unix.SockaddrVM{CID: cid, Port: port}); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("vsock connect %d:%d: %w (is kvmnet-agent running in the guest, listening on vsock port %d?)", cid, port, err, port)
	}
	return &vsockConn{Conn: c, local: vsockAddr{unix.VMADDR_CID_HOST, src}, remote: vsockAddr{cid, port}}, nil
}

type vsockAddr struct{ cid, port uint32 }

func (a vsockAddr) Network() string { return "vsock" }
func (a vsockAddr) String() string  { return fmt.Sprintf("vsock:%d:%d", a.cid, a.port) }

type vsockConn struct {
	*socket.Conn
	local, remote vsockAddr
}

func (c *vsockConn) LocalAddr() net.Addr                { return c.local }
func (c *vsockConn) RemoteAddr() net.Addr               { return c.remote }
func (c *vsockConn) SetDeadline(t time.Time) error      { return c.Conn.SetDeadline(t) }
func (c *vsockConn) SetReadDeadline(t time.Time) error  { return c.Conn.SetReadDeadline(t) }
func (c *vsockConn) SetWriteDeadline(t time.Time) error { return c.Conn.SetWriteDeadline(t) }
