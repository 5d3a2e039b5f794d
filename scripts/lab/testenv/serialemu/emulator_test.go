package serialemu

import (
	"errors"
	"io"
	"net"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func newEmu(t *testing.T) *Emulator {
	t.Helper()
	e, err := New(filepath.Join(t.TempDir(), "ch.sock"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func waitConnected(t *testing.T, e *Emulator, want bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for e.HostConnected() != want {
		if time.Now().After(deadline) {
			t.Fatalf("host connected never became %v", want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestBehavesLikeTheMeasuredPort checks the emulator against the measured facts it claims to model.
func TestBehavesLikeTheMeasuredPort(t *testing.T) {
	e := newEmu(t)
	p, err := e.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	// A second open is refused.
	if _, err := e.Open(); !errors.Is(err, syscall.EBUSY) {
		t.Fatalf("second Open = %v, want EBUSY", err)
	}
	// No host: read returns EOF at once, probe says disconnected.
	if n, err := p.Read(make([]byte, 8)); n != 0 || err != io.EOF {
		t.Fatalf("read without host = %d, %v; want 0, EOF", n, err)
	}
	if ok, _ := p.HostConnected(); ok {
		t.Fatal("HostConnected without host")
	}
	// Guest output written while no host is connected goes to the next host client.
	if _, err := p.Write([]byte("stale-out")); err != nil {
		t.Fatal(err)
	}
	h1, err := net.Dial("unix", e.HostPath())
	if err != nil {
		t.Fatal(err)
	}
	waitConnected(t, e, true)
	buf := make([]byte, 9)
	_ = h1.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(h1, buf); err != nil || string(buf) != "stale-out" {
		t.Fatalf("first host read %q, %v; want the stale guest output", buf, err)
	}
	// Host input the guest does not read survives a reconnect.
	if _, err := h1.Write([]byte("unread")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	h1.Close()
	waitConnected(t, e, false)
	got := make([]byte, 6)
	if n, err := p.Read(got); err != nil || string(got[:n]) != "unread" {
		t.Fatalf("guest read after host left = %q, %v; want the unread host bytes", got[:n], err)
	}
	if _, err := p.Read(got); err != io.EOF {
		t.Fatalf("guest read with nothing buffered and no host = %v, want EOF", err)
	}
	// A blocked read ends with EOF when the host goes away.
	h2, err := net.Dial("unix", e.HostPath())
	if err != nil {
		t.Fatal(err)
	}
	waitConnected(t, e, true)
	errc := make(chan error, 1)
	go func() { _, err := p.Read(got); errc <- err }()
	time.Sleep(50 * time.Millisecond)
	h2.Close()
	select {
	case err := <-errc:
		if err != io.EOF {
			t.Fatalf("blocked read after host left = %v, want EOF", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("blocked read did not end when the host left")
	}
	if e.HostConns() != 2 || e.EOFReads() != 3 {
		t.Fatalf("counters: host conns %d eof reads %d, want 2 and 3", e.HostConns(), e.EOFReads())
	}
}

// TestOneHostAtATime: a second host client is queued until the first leaves.
func TestOneHostAtATime(t *testing.T) {
	e := newEmu(t)
	p, err := e.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	h1, err := net.Dial("unix", e.HostPath())
	if err != nil {
		t.Fatal(err)
	}
	waitConnected(t, e, true)
	h2, err := net.Dial("unix", e.HostPath())
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	if _, err := h2.Write([]byte("second")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if e.HostConns() != 1 {
		t.Fatalf("host conns = %d while the first is connected, want 1", e.HostConns())
	}
	h1.Close()
	buf := make([]byte, 6)
	if _, err := io.ReadFull(readerFunc(p.Read), buf); err != nil || string(buf) != "second" {
		t.Fatalf("guest read %q, %v; want the queued client's bytes", buf, err)
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(b []byte) (int, error) {
	for {
		n, err := f(b)
		if err == io.EOF && n == 0 {
			time.Sleep(10 * time.Millisecond) // between host clients
			continue
		}
		return n, err
	}
}
