package transport

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/vsock"
)

// fakePeer reads a vsock peer from the name a unix client bound itself to: ".../peer-CID-PORT".
func fakePeer(a net.Addr) (cid, port uint32, ok bool) {
	ua, isUnix := a.(*net.UnixAddr)
	if !isUnix {
		return 0, 0, false
	}
	if _, err := fmt.Sscanf(filepath.Base(ua.Name), "peer-%d-%d", &cid, &port); err != nil {
		return 0, 0, false
	}
	return cid, port, true
}

// dialAs connects to the unix listener at path from a client socket bound to name (or unbound).
func dialAs(t *testing.T, dir, path, name string) *net.UnixConn {
	t.Helper()
	var laddr *net.UnixAddr
	if name != "" {
		laddr = &net.UnixAddr{Name: filepath.Join(dir, name), Net: "unix"}
	}
	c, err := net.DialUnix("unix", laddr, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestPeerFilter drives the filter through real unix sockets whose client names carry the vsock
// peer: only CID 2 from a port < 1024 gets through; the others are closed and logged.
func TestPeerFilter(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.sock")
	ul, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuf
	f := NewPeerFilter(ul, fakePeer, slog.New(slog.NewTextHandler(&logs, nil)))
	defer f.Close()

	rejected := []struct{ name, client, evidence string }{
		{"unprivileged port from the host", "peer-2-1024", "peer_port=1024 unprivileged"},
		{"another guest", "peer-3-22", "peer_cid=3 want_cid=2"},
		{"the local CID", "peer-1-22", "peer_cid=1 want_cid=2"},
		{"not a vsock address", "", "not a vsock peer address"},
	}
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := f.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	for _, r := range rejected {
		c := dialAs(t, dir, path, r.client)
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("%s: client read = %d, %v; want EOF (closed by the filter)", r.name, n, err)
		}
		if !strings.Contains(logs.String(), r.evidence) {
			t.Errorf("%s: log lacks %q:\n%s", r.name, r.evidence, logs.String())
		}
	}
	select {
	case c := <-accepted:
		t.Fatalf("a rejected peer was accepted: %v", c.RemoteAddr())
	default:
	}
	good := dialAs(t, dir, path, "peer-2-1023")
	select {
	case c := <-accepted:
		defer c.Close()
		if cid, port, _ := fakePeer(c.RemoteAddr()); cid != 2 || port != 1023 {
			t.Fatalf("accepted %v, want the host from port 1023", c.RemoteAddr())
		}
		if _, err := c.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		if _, err := good.Read(make([]byte, 1)); err != nil {
			t.Fatalf("allowed client cannot read: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the host from a privileged port was not accepted")
	}
}

func TestAllowed(t *testing.T) {
	tests := []struct {
		cid, port uint32
		ok        bool
	}{
		{2, 0, true}, {2, 1023, true}, {2, 1024, false}, {2, 65535, false}, {0, 100, false}, {1, 100, false}, {3, 100, false},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("cid%d_port%d", tc.cid, tc.port), func(t *testing.T) {
			ok, why := Allowed(tc.cid, tc.port)
			if ok != tc.ok || !strings.Contains(why, fmt.Sprint(tc.cid)) && !strings.Contains(why, fmt.Sprint(tc.port)) {
				t.Fatalf("Allowed(%d, %d) = %v %q, want %v with evidence", tc.cid, tc.port, ok, why, tc.ok)
			}
		})
	}
}

func TestVsockPeer(t *testing.T) {
	if cid, port, ok := VsockPeer(&vsock.Addr{ContextID: 2, Port: 1000}); !ok || cid != 2 || port != 1000 {
		t.Fatalf("VsockPeer(vsock 2:1000) = %d %d %v", cid, port, ok)
	}
	if _, _, ok := VsockPeer(&net.UnixAddr{Name: "/x", Net: "unix"}); ok {
		t.Fatal("VsockPeer accepted a unix address")
	}
	if _, _, ok := VsockPeer((*vsock.Addr)(nil)); ok {
		t.Fatal("VsockPeer accepted a nil vsock address")
	}
}
