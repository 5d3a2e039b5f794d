package transport

import (
	"fmt"
	"log/slog"
	"net"

	"github.com/mdlayher/vsock"
)

// HostCID is the vsock context id of the host.
const HostCID = 2

// MaxPrivilegedPort is the first unprivileged port: only root can bind a source port below it.
const MaxPrivilegedPort = 1024

// DefaultVsockPort is the vsock port the agent listens on unless told otherwise.
const DefaultVsockPort = 7531

// PeerFunc extracts the vsock context id and port of a connection's remote address. ok is false when
// the address is not a vsock address.
type PeerFunc func(net.Addr) (cid, port uint32, ok bool)

// VsockPeer is the PeerFunc for real vsock connections (*vsock.Addr).
func VsockPeer(a net.Addr) (cid, port uint32, ok bool) {
	va, ok := a.(*vsock.Addr)
	if !ok || va == nil {
		return 0, 0, false
	}
	return va.ContextID, va.Port, true
}

// PeerFilter is a net.Listener that returns only connections from the host (CID 2) whose source port
// is privileged (< 1024): any unprivileged host user can otherwise connect to a guest's vsock port.
// Other connections are logged and closed, and Accept keeps waiting.
type PeerFilter struct {
	net.Listener
	peer PeerFunc
	log  *slog.Logger
}

// NewPeerFilter wraps l. peer extracts the remote vsock address (VsockPeer for real sockets).
func NewPeerFilter(l net.Listener, peer PeerFunc, log *slog.Logger) *PeerFilter {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &PeerFilter{Listener: l, peer: peer, log: log}
}

// Allowed reports whether a peer may talk to the agent, with the reason as evidence.
func Allowed(cid, port uint32) (bool, string) {
	switch {
	case cid != HostCID:
		return false, fmt.Sprintf("peer_cid=%d want_cid=%d", cid, HostCID)
	case port >= MaxPrivilegedPort:
		return false, fmt.Sprintf("peer_port=%d unprivileged (want < %d: only root on the host)", port, MaxPrivilegedPort)
	default:
		return true, fmt.Sprintf("peer_cid=%d peer_port=%d", cid, port)
	}
}

// Accept returns the next connection from an allowed peer.
func (f *PeerFilter) Accept() (net.Conn, error) {
	for {
		c, err := f.Listener.Accept()
		if err != nil {
			return nil, err
		}
		cid, port, ok := f.peer(c.RemoteAddr())
		if !ok {
			f.log.Warn("vsock: rejected connection", "remote", c.RemoteAddr().String(), "reason", "not a vsock peer address")
			_ = c.Close()
			continue
		}
		if allowed, why := Allowed(cid, port); !allowed {
			f.log.Warn("vsock: rejected connection", "remote", c.RemoteAddr().String(), "reason", why)
			_ = c.Close()
			continue
		}
		return c, nil
	}
}

// ListenVsock listens on the given vsock port of this guest and filters peers with NewPeerFilter.
// It opens an AF_VSOCK socket: never call it in tests.
func ListenVsock(port uint32, log *slog.Logger) (net.Listener, error) {
	l, err := vsock.Listen(port, nil)
	if err != nil {
		return nil, fmt.Errorf("transport: listen on vsock port %d: %w (is the vhost-vsock device attached to this guest?)", port, err)
	}
	return NewPeerFilter(l, VsockPeer, log), nil
}
