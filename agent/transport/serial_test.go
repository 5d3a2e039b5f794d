package transport_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kvmnet/kvmnet/agent/transport"
	"github.com/kvmnet/kvmnet/proto/kvmnet/v1/resync"
	"github.com/kvmnet/kvmnet/scripts/lab/testenv/serialemu"
)

func newEmu(t *testing.T, opts serialemu.Options) *serialemu.Emulator {
	t.Helper()
	e, err := serialemu.New(filepath.Join(t.TempDir(), "channel.sock"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func newListener(t *testing.T, e *serialemu.Emulator) *transport.SerialListener {
	t.Helper()
	l := transport.NewSerialListener(e, transport.SerialOptions{})
	t.Cleanup(func() { l.Close() })
	return l
}

// hostSession connects to the host end and runs the host half of the handshake.
func hostSession(t *testing.T, e *serialemu.Emulator) net.Conn {
	t.Helper()
	c, err := net.Dial("unix", e.HostPath())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hc, err := resync.Host(ctx, c, 100*time.Millisecond)
	if err != nil {
		c.Close()
		t.Fatalf("host handshake: %v", err)
	}
	return hc
}

// echoServer accepts sessions forever and echoes each; it returns a channel of accepted counts.
func echoServer(l net.Listener) <-chan error {
	done := make(chan error, 1)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				done <- err
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	return done
}

func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("read echo: %v", err)
	}
	if string(buf) != msg {
		t.Fatalf("echo = %q, want %q", buf, msg)
	}
}

// TestSerialNoBusyLoopWhileDisconnected: the emulated port returns EOF at once while no host is
// connected (as the real one does). Without SIGIO-like signals the listener must still only probe a
// handful of times per second, and never read.
func TestSerialNoBusyLoopWhileDisconnected(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts serialemu.Options
	}{{"backoff only", serialemu.Options{NoSignals: true}}, {"with change signals", serialemu.Options{}}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEmu(t, tc.opts)
			l := newListener(t, e)
			done := echoServer(l)
			const window = 2 * time.Second
			time.Sleep(window)
			ops := e.Reads() + e.Probes()
			perSec := float64(ops) / window.Seconds()
			t.Logf("while disconnected: reads=%d eof_reads=%d probes=%d (%.1f ops/s)", e.Reads(), e.EOFReads(), e.Probes(), perSec)
			if perSec > 10 {
				t.Fatalf("%.1f reads+probes per second while no host is connected: the listener spins", perSec)
			}
			if e.EOFReads() > 0 {
				t.Fatalf("listener read the port %d times while no host was connected (it must poll instead)", e.EOFReads())
			}
			// It did not give up: a host that connects now is served.
			c := hostSession(t, e)
			defer c.Close()
			roundTrip(t, c, "after a long wait")
			select {
			case err := <-done:
				t.Fatalf("Accept returned %v", err)
			default:
			}
		})
	}
}

// TestSerialHostReconnects: host clients come and go; each new one gets a fresh session, and the
// idle time between them does not turn into a read loop.
func TestSerialHostReconnects(t *testing.T) {
	e := newEmu(t, serialemu.Options{})
	l := newListener(t, e)
	echoServer(l)
	for i := range 5 {
		c := hostSession(t, e)
		roundTrip(t, c, "session "+string(rune('0'+i)))
		c.Close()
		before := e.Reads() + e.Probes()
		time.Sleep(300 * time.Millisecond)
		if d := e.Reads() + e.Probes() - before; d > 10 {
			t.Fatalf("after host %d left: %d reads+probes in 300ms", i, d)
		}
	}
	if got := e.HostConns(); got != 5 {
		t.Fatalf("host connections = %d, want 5", got)
	}
}

// TestSerialStaleBytesDiscarded: bytes left by previous sessions in both directions (HTTP/2 frames,
// a stale HELLO, a stale ECHO/READY) never reach the new session's payload. (A stale HELLO+GO pair
// is covered with a real gRPC server in controller/agentclient: the guest's HTTP/2 server fails on
// the new HELLO and the host's resend gets through.)
func TestSerialStaleBytesDiscarded(t *testing.T) {
	e := newEmu(t, serialemu.Options{})
	oldNonce := "00000000000000000000000000000000"
	toGuest := append([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04"), resync.Record(resync.VerbHello, oldNonce)...)
	toHost := append(bytes.Repeat([]byte{0, 0, 4, 8, 0, 0, 0, 0, 0}, 2000), resync.Record(resync.VerbEcho, oldNonce)...)
	toHost = append(toHost, resync.Record(resync.VerbReady, oldNonce)...)
	e.Preload(toGuest, toHost)
	l := newListener(t, e)
	echoServer(l)
	c := hostSession(t, e)
	defer c.Close()
	roundTrip(t, c, "fresh")
	roundTrip(t, c, "and again")
}

// TestSerialCloseEndsLiveSession: closing the listener closes the live connection, so a server's
// Stop never waits on it, and Accept returns net.ErrClosed.
func TestSerialCloseEndsLiveSession(t *testing.T) {
	e := newEmu(t, serialemu.Options{})
	l := transport.NewSerialListener(e, transport.SerialOptions{})
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	hc := hostSession(t, e)
	defer hc.Close()
	gc := <-accepted
	readErr := make(chan error, 1)
	go func() { _, err := gc.Read(make([]byte, 1)); readErr <- err }()
	acceptErr := make(chan error, 1)
	go func() { _, err := l.Accept(); acceptErr <- err }()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for name, ch := range map[string]chan error{"live read": readErr, "accept": acceptErr} {
		select {
		case err := <-ch:
			if err == nil {
				t.Fatalf("%s returned no error after Close", name)
			}
			if name == "accept" && !errors.Is(err, net.ErrClosed) {
				t.Fatalf("Accept after Close = %v, want net.ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s still blocked 5s after Close", name)
		}
	}
}

// TestSerialCloseWhileWaitingForHost: Close interrupts the wait for a host.
func TestSerialCloseWhileWaitingForHost(t *testing.T) {
	e := newEmu(t, serialemu.Options{NoSignals: true})
	l := transport.NewSerialListener(e, transport.SerialOptions{})
	errc := make(chan error, 1)
	go func() { _, err := l.Accept(); errc <- err }()
	time.Sleep(100 * time.Millisecond)
	l.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept = %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept still blocked after Close")
	}
	// The port was released: it can be opened again.
	p, err := e.Open()
	if err != nil {
		t.Fatalf("port still held after Close: %v", err)
	}
	p.Close()
}

// TestSerialDeadlineEndsSession: an expired deadline ends the session (a silent host after the
// handshake cannot hold the only connection forever) and the next host is served.
func TestSerialDeadlineEndsSession(t *testing.T) {
	e := newEmu(t, serialemu.Options{})
	l := newListener(t, e)
	accepted := make(chan net.Conn, 2)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	hc := hostSession(t, e)
	defer hc.Close()
	gc := <-accepted
	_ = gc.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	_, err := gc.Read(make([]byte, 1))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read after deadline = %v, want os.ErrDeadlineExceeded", err)
	}
	gc.Close()
	hc.Close()
	hc2 := hostSession(t, e)
	defer hc2.Close()
	select {
	case c := <-accepted:
		c.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("next host not accepted")
	}
}

// TestSerialPoisonOnOpen: every session starts with the invalid HTTP/2 frame header, so a host
// client still speaking HTTP/2 to a previous agent incarnation fails at once.
func TestSerialPoisonOnOpen(t *testing.T) {
	e := newEmu(t, serialemu.Options{})
	c, err := net.Dial("unix", e.HostPath())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for !e.HostConnected() {
		time.Sleep(10 * time.Millisecond)
	}
	l := newListener(t, e)
	go l.Accept()
	buf := make([]byte, len(resync.Poison))
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf, resync.Poison) {
		t.Fatalf("first bytes from a fresh agent = % x, want % x", buf, resync.Poison)
	}
}
