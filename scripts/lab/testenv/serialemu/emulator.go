// Package serialemu emulates a virtio-serial channel the way QEMU and the guest kernel behave (as
// measured with a real TCG guest under libvirt 9.0), over a real unix socket for the host end:
//
//   - the host end is a unix socket serving one client at a time; further clients queue in the
//     kernel backlog until the current one closes;
//   - a guest Read returns EOF at once while no host client is connected and nothing is buffered;
//   - bytes the guest writes while no host is connected are delivered to the NEXT host client, and
//     host bytes the guest did not read survive a reconnect;
//   - the guest port can be open once (a second Open gets EBUSY);
//   - host connect/disconnect is signalled on Changes (like SIGIO), unless disabled.
//
// It counts guest reads and probes so tests can prove the agent does not spin while disconnected.
// It is test support for agent/transport and controller/agentclient; it must never be imported by
// production code.
package serialemu

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/kvmnet/kvmnet/agent/transport"
)

// Options tunes the emulator.
type Options struct {
	// NoSignals makes Changes return nil: the guest side must rely on its backoff alone.
	NoSignals bool
	// RingSize bounds guest bytes waiting for a host; a guest Write blocks beyond it. Default 64 KiB.
	RingSize int
}

// Emulator is one virtio-serial channel: host end (unix socket) and guest end (transport.Device).
type Emulator struct {
	path string
	ln   *net.UnixListener
	opts Options

	mu      sync.Mutex
	cond    *sync.Cond
	host    net.Conn
	hostGen int
	in      []byte // host -> guest, unread
	out     []byte // guest -> host, undelivered
	port    *port
	closed  bool
	changes chan struct{}
	wg      sync.WaitGroup

	reads, eofReads, probes, hostConns atomic.Int64
}

// New starts an emulator whose host end listens on the unix socket path.
func New(path string, opts Options) (*Emulator, error) {
	if opts.RingSize <= 0 {
		opts.RingSize = 64 << 10
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("serialemu: listen %s: %w", path, err)
	}
	e := &Emulator{path: path, ln: ln, opts: opts, changes: make(chan struct{}, 1)}
	e.cond = sync.NewCond(&e.mu)
	e.wg.Add(1)
	go e.serveHost()
	return e, nil
}

// HostPath is the unix socket of the host end (what the controller dials as serial:PATH).
func (e *Emulator) HostPath() string { return e.path }

// Name implements transport.Device.
func (e *Emulator) Name() string { return "emulated:" + e.path }

// Changes implements transport.Device.
func (e *Emulator) Changes() <-chan struct{} {
	if e.opts.NoSignals {
		return nil
	}
	return e.changes
}

// Reads counts guest Read calls; EOFReads those that returned EOF; Probes the HostConnected calls.
func (e *Emulator) Reads() int64 { return e.reads.Load() }

// EOFReads counts guest reads that returned EOF because no host was connected.
func (e *Emulator) EOFReads() int64 { return e.eofReads.Load() }

// Probes counts HostConnected calls.
func (e *Emulator) Probes() int64 { return e.probes.Load() }

// HostConns counts host clients accepted so far.
func (e *Emulator) HostConns() int64 { return e.hostConns.Load() }

// HostConnected reports whether a host client is attached.
func (e *Emulator) HostConnected() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.host != nil
}

// Preload adds stale bytes: toGuest as if a previous host client wrote them and the guest never
// read them, toHost as if the guest wrote them while no host was connected.
func (e *Emulator) Preload(toGuest, toHost []byte) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.in = append(e.in, toGuest...)
	e.out = append(e.out, toHost...)
	e.cond.Broadcast()
}

// DropGuest closes the guest's open port as if the agent process died: its pending reads and writes
// fail and nothing more it writes reaches the host. The host connection stays up.
func (e *Emulator) DropGuest() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.port != nil {
		e.port.closed = true
		e.port = nil
		e.cond.Broadcast()
	}
}

// DropHost disconnects the current host client, as if it went away.
func (e *Emulator) DropHost() {
	e.mu.Lock()
	h := e.host
	e.mu.Unlock()
	if h != nil {
		_ = h.Close()
	}
}

// Close stops the emulator.
func (e *Emulator) Close() error {
	e.mu.Lock()
	e.closed = true
	h := e.host
	e.cond.Broadcast()
	e.mu.Unlock()
	err := e.ln.Close()
	if h != nil {
		_ = h.Close()
	}
	e.wg.Wait()
	return err
}

func (e *Emulator) signal() {
	select {
	case e.changes <- struct{}{}:
	default:
	}
}

// serveHost accepts host clients one at a time.
func (e *Emulator) serveHost() {
	defer e.wg.Done()
	for {
		c, err := e.ln.Accept()
		if err != nil {
			return
		}
		e.hostConns.Add(1)
		e.mu.Lock()
		if e.closed {
			e.mu.Unlock()
			_ = c.Close()
			return
		}
		e.host = c
		e.hostGen++
		gen := e.hostGen
		e.cond.Broadcast()
		e.mu.Unlock()
		e.signal()

		var w sync.WaitGroup
		w.Add(1)
		go func() { defer w.Done(); e.pumpToHost(c, gen) }()
		buf := make([]byte, 32<<10)
		for {
			n, err := c.Read(buf)
			if n > 0 {
				e.mu.Lock()
				e.in = append(e.in, buf[:n]...)
				e.cond.Broadcast()
				e.mu.Unlock()
			}
			if err != nil {
				break
			}
		}
		e.mu.Lock()
		e.host = nil
		e.cond.Broadcast()
		e.mu.Unlock()
		_ = c.Close()
		w.Wait()
		e.signal()
	}
}

// pumpToHost delivers guest output to host client c while it is the current one.
func (e *Emulator) pumpToHost(c net.Conn, gen int) {
	for {
		e.mu.Lock()
		for len(e.out) == 0 && e.hostGen == gen && e.host != nil && !e.closed {
			e.cond.Wait()
		}
		if e.hostGen != gen || e.host == nil || e.closed {
			e.mu.Unlock()
			return
		}
		chunk := e.out
		e.out = nil
		e.cond.Broadcast()
		e.mu.Unlock()
		if _, err := c.Write(chunk); err != nil {
			_ = c.Close()
			return
		}
	}
}

// Open implements transport.Device.
func (e *Emulator) Open() (transport.Port, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, errors.New("serialemu: emulator closed")
	}
	if e.port != nil {
		return nil, &os.PathError{Op: "open", Path: e.Name(), Err: syscall.EBUSY}
	}
	e.port = &port{e: e}
	return e.port, nil
}

type port struct {
	e      *Emulator
	closed bool // guarded by e.mu
}

func (p *port) Read(b []byte) (int, error) {
	e := p.e
	e.reads.Add(1)
	e.mu.Lock()
	defer e.mu.Unlock()
	for {
		if p.closed || e.closed {
			return 0, os.ErrClosed
		}
		if len(e.in) > 0 {
			n := copy(b, e.in)
			e.in = e.in[n:]
			return n, nil
		}
		if e.host == nil {
			e.eofReads.Add(1)
			return 0, io.EOF
		}
		e.cond.Wait()
	}
}

func (p *port) Write(b []byte) (int, error) {
	e := p.e
	e.mu.Lock()
	defer e.mu.Unlock()
	for {
		if p.closed || e.closed {
			return 0, os.ErrClosed
		}
		if len(e.out) < e.opts.RingSize {
			e.out = append(e.out, b...)
			e.cond.Broadcast()
			return len(b), nil
		}
		e.cond.Wait()
	}
}

func (p *port) Close() error {
	e := p.e
	e.mu.Lock()
	defer e.mu.Unlock()
	p.closed = true
	if e.port == p {
		e.port = nil
	}
	e.cond.Broadcast()
	return nil
}

func (p *port) HostConnected() (bool, error) {
	e := p.e
	e.probes.Add(1)
	e.mu.Lock()
	defer e.mu.Unlock()
	if p.closed {
		return false, os.ErrClosed
	}
	return e.host != nil, nil
}
