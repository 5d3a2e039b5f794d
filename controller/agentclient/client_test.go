package agentclient

import (
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kvmnet/kvmnet/agent/server"
	"github.com/kvmnet/kvmnet/agent/transport"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
	"github.com/kvmnet/kvmnet/proto/kvmnet/v1/resync"
)

func TestUnixEndToEnd(t *testing.T) {
	addr, _ := unixAgent(t, "guest-unix")
	c := dial(t, addr)
	if got := getState(t, c); got.GetHostname() != "guest-unix" || got.GetInterfaces()[0].GetName() != "enp1s0" {
		t.Fatalf("GetState = %v", got)
	}
	if c.Addr().String() != addr {
		t.Fatalf("Addr = %v, want %s", c.Addr(), addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w, err := c.Watch(ctx, &kvmnetv1.WatchRequest{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		_, err := w.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 3 {
		t.Fatalf("Watch delivered %d events, want 3", n)
	}
}

// TestReportOnlyThroughClient: the gate as the controller sees it.
func TestReportOnlyThroughClient(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.sock")
	l, err := transport.ListenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	agentOn(t, l, "ro", server.Options{AllowApply: false})
	c := dial(t, "unix:"+path)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = c.Apply(ctx, &kvmnetv1.ApplyRequest{})
	if st := status.Convert(err); st.Code() != codes.PermissionDenied || !strings.Contains(st.Message(), "allow_apply") {
		t.Fatalf("Apply = %v, want PermissionDenied naming allow_apply", err)
	}
	if got := getState(t, c); got.GetHostname() != "ro" {
		t.Fatalf("GetState in report-only mode = %v", got)
	}
}

// TestSerialEndToEnd: gRPC over the emulated virtio-serial channel; the host reconnects repeatedly
// and each new client works; between clients the agent does not spin on EOF.
func TestSerialEndToEnd(t *testing.T) {
	e := newEmu(t)
	serialAgent(t, e, "guest-serial", server.Options{})
	for i := range 4 {
		c := dial(t, "serial:"+e.HostPath(), WithResend(100*time.Millisecond))
		if got := getState(t, c); got.GetHostname() != "guest-serial" {
			t.Fatalf("client %d: GetState = %v", i, got)
		}
		c.Close()
		before := e.Reads() + e.Probes()
		time.Sleep(time.Second)
		if d := e.Reads() + e.Probes() - before; d > 10 {
			t.Fatalf("after client %d left: %d reads+probes in 1s while disconnected", i, d)
		}
	}
	if e.HostConns() != 4 {
		t.Fatalf("host connections = %d, want 4", e.HostConns())
	}
}

// TestSerialStaleSession: a previous host left a HELLO+GO (and HTTP/2 bytes) the guest never read,
// and the guest left output no host read. The guest follows the stale GO into HTTP/2, its server
// fails on the new HELLO, and the host's resent HELLO starts a clean session.
func TestSerialStaleSession(t *testing.T) {
	e := newEmu(t)
	old := "11111111111111111111111111111111"
	toGuest := append([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), resync.Record(resync.VerbHello, old)...)
	toGuest = append(toGuest, resync.Record(resync.VerbGo, old)...)
	toHost := append([]byte{0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 5, 0, 0, 64, 0}, resync.Record(resync.VerbReady, old)...)
	e.Preload(toGuest, toHost)
	serialAgent(t, e, "guest-stale", server.Options{})
	c := dial(t, "serial:"+e.HostPath(), WithResend(100*time.Millisecond))
	if got := getState(t, c); got.GetHostname() != "guest-stale" {
		t.Fatalf("GetState = %v", got)
	}
}

// TestSerialBadInput: garbage, a truncated HTTP/2 preface (host gone), and a truncated preface from a
// host that stays connected (freed by the server's connection timeout) neither crash nor wedge the
// agent: the next good client is served.
func TestSerialBadInput(t *testing.T) {
	e := newEmu(t)
	serialAgent(t, e, "guest-bad", server.Options{ConnectionTimeout: 500 * time.Millisecond})
	raw := func() net.Conn {
		c, err := net.Dial("unix", e.HostPath())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	handshaken := func() net.Conn {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := resync.Host(ctx, raw(), 100*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// 1. Pure garbage, then gone.
	c := raw()
	c.Write([]byte("\x16\x03\x01\x02\x00GET / HTTP/1.1\r\n\r\n\xff\xff\xff\xff\x00\x00"))
	c.Close()
	// 2. Handshake, then garbage instead of a preface.
	c = handshaken()
	c.Write([]byte("this is not HTTP/2 at all\r\n\r\n\x00\x01\x02"))
	time.Sleep(300 * time.Millisecond) // the agent's HTTP/2 server gives up on it meanwhile
	c.Close()
	// 3. Handshake, truncated preface, gone.
	c = handshaken()
	c.Write([]byte("PRI * HTTP/2.0\r\n"))
	c.Close()
	// 4. Handshake, truncated preface, and the host stays connected and silent.
	c = handshaken()
	c.Write([]byte("PRI * HTT"))
	time.Sleep(1500 * time.Millisecond) // past the 500ms connection timeout
	c.Close()
	// The next good client is served.
	good := dial(t, "serial:"+e.HostPath(), WithResend(100*time.Millisecond))
	if got := getState(t, good); got.GetHostname() != "guest-bad" {
		t.Fatalf("GetState after bad input = %v", got)
	}
}

// TestSerialAgentRestart: the agent dies and a new one starts while the host keeps its connection.
// The new agent's poison frame makes the host's HTTP/2 client fail at once; the channel redials
// with a fresh handshake and the next call succeeds well within its deadline (without the poison it
// would hang until the deadline: the new agent discards the old session's frames).
func TestSerialAgentRestart(t *testing.T) {
	e := newEmu(t)
	_, _, stop1 := serialAgent(t, e, "incarnation-1", server.Options{})
	c := dial(t, "serial:"+e.HostPath(), WithResend(100*time.Millisecond))
	if got := getState(t, c); got.GetHostname() != "incarnation-1" {
		t.Fatalf("GetState = %v", got)
	}
	// The agent process dies. Its listener closes the port first thing, so nothing more of it
	// reaches the host (no GOAWAY), as with a kill -9; DropGuest makes sure of that.
	stop1()
	e.DropGuest()
	if !e.HostConnected() {
		t.Fatal("host connection dropped with the agent; the test needs it held")
	}
	serialAgent(t, e, "incarnation-2", server.Options{})
	var lastErr error
	for attempt := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := c.GetState(ctx, &kvmnetv1.GetStateRequest{})
		cancel()
		if err == nil {
			if st.GetHostname() != "incarnation-2" {
				t.Fatalf("GetState after restart = %v", st)
			}
			if e.HostConns() < 2 {
				t.Fatalf("host connections = %d: the client did not redial", e.HostConns())
			}
			t.Logf("served by the new agent on attempt %d (previous error: %v)", attempt+1, lastErr)
			return
		}
		if status.Code(err) == codes.DeadlineExceeded {
			t.Fatalf("attempt %d hung until its deadline: %v", attempt+1, err)
		}
		lastErr = err
	}
	t.Fatalf("never served by the new agent: %v", lastErr)
}

// TestVsockFilterEndToEnd routes vsock addresses through unix sockets whose client names carry the
// peer CID and port: the agent behind the peer filter serves the host from a privileged port and
// drops an unprivileged caller.
func TestVsockFilterEndToEnd(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "vsock.sock")
	ul, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	peer := func(a net.Addr) (cid, port uint32, ok bool) {
		ua, isUnix := a.(*net.UnixAddr)
		if !isUnix {
			return 0, 0, false
		}
		var c, p uint32
		if _, err := fmtSscanf(filepath.Base(ua.Name), &c, &p); err != nil {
			return 0, 0, false
		}
		return c, p, true
	}
	agentOn(t, transport.NewPeerFilter(ul, peer, nil), "guest-vsock", server.Options{})
	n := 0
	dialFrom := func(srcCID, srcPort uint32) func(ctx context.Context, cid, port uint32) (net.Conn, error) {
		return func(ctx context.Context, cid, port uint32) (net.Conn, error) {
			n++
			laddr := &net.UnixAddr{Name: filepath.Join(dir, "peer-"+itoa(srcCID)+"-"+itoa(srcPort)+"-"+itoa(uint32(n))), Net: "unix"}
			return net.DialUnix("unix", laddr, &net.UnixAddr{Name: path, Net: "unix"})
		}
	}
	c := dial(t, "vsock:42:7531", WithVsockDialer(dialFrom(2, 1023)))
	if got := getState(t, c); got.GetHostname() != "guest-vsock" {
		t.Fatalf("GetState = %v", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if bad, err := Dial(ctx, "vsock:42:7531", WithVsockDialer(dialFrom(2, 40000))); err == nil {
		bad.Close()
		t.Fatal("an unprivileged source port got through the filter")
	}
}

// TestCallTimeout: a hung agent is an error after the default call deadline, not a hang.
func TestCallTimeout(t *testing.T) {
	addr, svc := unixAgent(t, "hung")
	c := dial(t, addr, WithCallTimeout(300*time.Millisecond))
	svc.hang.Store(true)
	_, err := c.GetState(context.Background(), &kvmnetv1.GetStateRequest{})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("GetState on a hung agent = %v, want DeadlineExceeded", err)
	}
}

func TestDialErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, addr, want string
	}{
		{"bad address", "tcp:1.2.3.4:5", "unknown scheme"},
		{"no socket", "unix:" + filepath.Join(dir, "nope.sock"), "no such file"},
		{"no channel socket", "serial:" + filepath.Join(dir, "nope.sock"), "connect channel socket"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, err := Dial(ctx, tc.addr)
			if err == nil {
				c.Close()
				t.Fatal("Dial succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Dial error = %v, want %q", err, tc.want)
			}
		})
	}
	// A channel socket with no agent behind it: the handshake gives up at the dial timeout.
	e := newEmu(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := Dial(ctx, "serial:"+e.HostPath(), WithDialTimeout(300*time.Millisecond))
	if err == nil || !strings.Contains(err.Error(), "kvmnet-agent running") {
		t.Fatalf("Dial to a channel without agent = %v, want the handshake hint", err)
	}
}

func TestParseAddr(t *testing.T) {
	tests := []struct {
		in      string
		want    Addr
		wantErr string
	}{
		{in: "unix:/run/kvmnet/agent.sock", want: Addr{Scheme: "unix", Path: "/run/kvmnet/agent.sock"}},
		{in: "serial:/var/lib/kvmnet/channels/g1.sock", want: Addr{Scheme: "serial", Path: "/var/lib/kvmnet/channels/g1.sock"}},
		{in: "vsock:3:7531", want: Addr{Scheme: "vsock", CID: 3, Port: 7531}},
		{in: "vsock:2:7531", wantErr: "CID must be a guest's"},
		{in: "vsock:4294967295:1", wantErr: "CID must be a guest's"},
		{in: "vsock:3", wantErr: "CID:PORT"},
		{in: "vsock:x:1", wantErr: "CID is not a number"},
		{in: "vsock:3:0", wantErr: "PORT"},
		{in: "unix:rel", wantErr: "absolute"},
		{in: "/run/x.sock", wantErr: "no scheme"},
		{in: "tcp:h:1", wantErr: "unknown scheme"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseAddr(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseAddr error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want || got.String() != tc.in {
				t.Fatalf("ParseAddr = %+v (%s), %v; want %+v", got, got, err, tc.want)
			}
		})
	}
}

func TestBindPrivileged(t *testing.T) {
	tests := []struct {
		name     string
		bind     func(p uint32) error
		want     uint32
		wantErr  string
		maxCalls int
	}{
		{name: "first free", bind: func(uint32) error { return nil }, want: 1023},
		{name: "skips ports in use", bind: func(p uint32) error {
			if p > 1000 {
				return unixEADDRINUSE
			}
			return nil
		}, want: 1000},
		{name: "not root", bind: func(uint32) error { return unixEACCES }, wantErr: "run kvmnetctl as root"},
		{name: "all in use", bind: func(uint32) error { return unixEADDRINUSE }, wantErr: "all ports 512..1023 in use"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := bindPrivileged(tc.bind)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("bindPrivileged = %d, %v; want %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("bindPrivileged = %d, %v; want %d", got, err, tc.want)
			}
			if got >= 1024 {
				t.Fatalf("source port %d is not privileged", got)
			}
		})
	}
}
