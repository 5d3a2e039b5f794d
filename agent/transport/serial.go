package transport

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/kvmnet/kvmnet/proto/kvmnet/v1/resync"
)

// DefaultSerialDevice is the guest end of the kvmnet virtio-serial channel.
const DefaultSerialDevice = "/dev/virtio-ports/org.kvmnet.agent.0"

// Port is the guest end of a virtio-serial port, opened once per session. Measured with a real guest:
// while no host client is connected a Read returns EOF at once (unless unread data is buffered), and a
// Write blocks once the ring is full.
type Port interface {
	io.ReadWriteCloser
	// HostConnected reports, without blocking, whether a host client is attached (a poll of the
	// device without POLLHUP).
	HostConnected() (bool, error)
}

// Device opens a Port. A second Open while a Port is open may fail (EBUSY on a real port).
type Device interface {
	Open() (Port, error)
	// Changes receives a value whenever the host may have connected or disconnected (SIGIO on the
	// real device). It may return nil when the device cannot signal; the listener then relies on its
	// backoff alone.
	Changes() <-chan struct{}
	// Name is the device path, for addresses and logs.
	Name() string
}

// SerialOptions tunes a SerialListener. Zero values take the defaults.
type SerialOptions struct {
	// Logger receives session events. Default: discard.
	Logger *slog.Logger
	// MinBackoff is the first wait after the host is found disconnected or a session fails. 20 ms.
	MinBackoff time.Duration
	// MaxBackoff caps the wait between probes of a disconnected port. 1 s.
	MaxBackoff time.Duration
}

// SerialListener presents one virtio-serial port as a net.Listener: Accept opens the port, waits for
// a host client (probing with exponential backoff and waking on Changes, never spinning on EOF),
// writes resync.Poison, runs the guest half of the resync handshake and returns the stream as a
// connection. The next Accept blocks until that connection is closed. Failed sessions (host gone,
// garbage, handshake errors) are logged and retried forever; only Close ends Accept.
type SerialListener struct {
	dev  Device
	opts SerialOptions
	log  *slog.Logger
	slot chan struct{} // holds a token while no session is live
	done chan struct{}

	mu      sync.Mutex
	closed  bool
	current Port        // the port of a session being set up
	live    *serialConn // the connection handed out
	backoff time.Duration
}

// NewSerialListener returns a listener over dev.
func NewSerialListener(dev Device, opts SerialOptions) *SerialListener {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 20 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = time.Second
	}
	l := &SerialListener{dev: dev, opts: opts, log: opts.Logger.With("device", dev.Name()),
		slot: make(chan struct{}, 1), done: make(chan struct{}), backoff: opts.MinBackoff}
	l.slot <- struct{}{}
	return l
}

// Accept waits for the previous connection to close, then for a host client that completes the
// resync handshake.
func (l *SerialListener) Accept() (net.Conn, error) {
	select {
	case <-l.slot:
	case <-l.done:
		return nil, net.ErrClosed
	}
	for {
		c, err := l.session()
		if err == nil {
			return c, nil
		}
		if l.isClosed() {
			l.slot <- struct{}{}
			return nil, net.ErrClosed
		}
		l.log.Debug("virtio-serial: session not established, retrying", "err", err, "backoff", l.backoff)
		if !l.sleep(l.backoff) {
			l.slot <- struct{}{}
			return nil, net.ErrClosed
		}
		l.backoff = min(2*l.backoff, l.opts.MaxBackoff)
	}
}

// session opens the port and runs one handshake.
func (l *SerialListener) session() (net.Conn, error) {
	p, err := l.dev.Open()
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", l.dev.Name(), err)
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		_ = p.Close()
		return nil, net.ErrClosed
	}
	l.current = p
	l.mu.Unlock()
	fail := func(err error) (net.Conn, error) {
		l.mu.Lock()
		l.current = nil
		l.mu.Unlock()
		_ = p.Close()
		return nil, err
	}
	if err := l.waitHost(p); err != nil {
		return fail(err)
	}
	// Fail fast any HTTP/2 client of a previous incarnation still holding the host end.
	if _, err := p.Write(resync.Poison); err != nil {
		return fail(fmt.Errorf("write poison frame: %w", err))
	}
	sc, nonce, err := resync.Guest(p)
	if err != nil {
		return fail(fmt.Errorf("resync handshake: %w (discarded=%d)", err, sc.Discarded))
	}
	c := &serialConn{port: p, name: l.dev.Name(), l: l, prefix: append([]byte(nil), sc.Rest()...)}
	l.mu.Lock()
	l.current = nil
	if l.closed {
		l.mu.Unlock()
		_ = p.Close()
		return nil, net.ErrClosed
	}
	l.live = c
	l.backoff = l.opts.MinBackoff
	l.mu.Unlock()
	l.log.Info("virtio-serial: host session established", "nonce", nonce, "discarded_bytes", sc.Discarded)
	return c, nil
}

// waitHost returns once p has a host client, probing with growing backoff and waking on the
// device's change signal.
func (l *SerialListener) waitHost(p Port) error {
	wait := l.opts.MinBackoff
	logged := false
	for {
		ok, err := p.HostConnected()
		if err != nil {
			return fmt.Errorf("probe host connection: %w", err)
		}
		if ok {
			return nil
		}
		if !logged {
			l.log.Debug("virtio-serial: no host client connected, waiting")
			logged = true
		}
		t := time.NewTimer(wait)
		select {
		case <-l.done:
			t.Stop()
			return net.ErrClosed
		case <-l.dev.Changes():
		case <-t.C:
			wait = min(2*wait, l.opts.MaxBackoff)
		}
		t.Stop()
	}
}

func (l *SerialListener) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-l.done:
		return false
	}
}

func (l *SerialListener) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// Close stops Accept and closes the live connection, so a gRPC server's Stop does not wait for it.
func (l *SerialListener) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	close(l.done)
	cur, live := l.current, l.live
	l.mu.Unlock()
	if cur != nil {
		_ = cur.Close()
	}
	if live != nil {
		_ = live.Close()
	}
	return nil
}

// Addr names the device.
func (l *SerialListener) Addr() net.Addr { return serialAddr(l.dev.Name()) }

func (l *SerialListener) release(c *serialConn) {
	l.mu.Lock()
	if l.live == c {
		l.live = nil
	}
	l.mu.Unlock()
	l.log.Info("virtio-serial: host session ended")
	l.slot <- struct{}{}
}

type serialAddr string

func (a serialAddr) Network() string { return "virtio-serial" }
func (a serialAddr) String() string  { return string(a) }

// serialConn is one session on the port. Deadlines end the session when they expire (a port cannot
// interrupt one read), which is what gRPC wants from its connection timeout.
type serialConn struct {
	port   Port
	name   string
	l      *SerialListener
	prefix []byte

	rmu sync.Mutex // serialises readers around prefix

	mu      sync.Mutex
	closed  bool
	expired bool
	rtimer  *time.Timer
	wtimer  *time.Timer
}

func (c *serialConn) Read(b []byte) (int, error) {
	c.rmu.Lock()
	if len(c.prefix) > 0 {
		n := copy(b, c.prefix)
		c.prefix = c.prefix[n:]
		c.rmu.Unlock()
		return n, nil
	}
	c.rmu.Unlock()
	n, err := c.port.Read(b)
	if err != nil {
		return n, c.mapErr(err)
	}
	return n, nil
}

func (c *serialConn) Write(b []byte) (int, error) {
	n, err := c.port.Write(b)
	if err != nil {
		return n, c.mapErr(err)
	}
	return n, nil
}

func (c *serialConn) mapErr(err error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.expired:
		return os.ErrDeadlineExceeded
	case c.closed:
		return net.ErrClosed
	}
	return err
}

// Close ends the session: the port is closed and the listener may accept the next host session.
func (c *serialConn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	stopTimer(&c.rtimer)
	stopTimer(&c.wtimer)
	c.mu.Unlock()
	err := c.port.Close()
	c.l.release(c)
	return err
}

func (c *serialConn) LocalAddr() net.Addr  { return serialAddr(c.name) }
func (c *serialConn) RemoteAddr() net.Addr { return serialAddr("host:" + c.name) }

// SetDeadline arms timers that end the session when t passes; the zero time disarms them.
func (c *serialConn) SetDeadline(t time.Time) error {
	_ = c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

// SetReadDeadline arms the read timer (see SetDeadline).
func (c *serialConn) SetReadDeadline(t time.Time) error { return c.arm(&c.rtimer, t) }

// SetWriteDeadline arms the write timer (see SetDeadline).
func (c *serialConn) SetWriteDeadline(t time.Time) error { return c.arm(&c.wtimer, t) }

func (c *serialConn) arm(timer **time.Timer, t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	stopTimer(timer)
	if t.IsZero() || c.closed {
		return nil
	}
	*timer = time.AfterFunc(time.Until(t), c.expire)
	return nil
}

func stopTimer(t **time.Timer) {
	if *t != nil {
		(*t).Stop()
		*t = nil
	}
}

func (c *serialConn) expire() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.expired = true
	c.mu.Unlock()
	c.l.log.Warn("virtio-serial: connection deadline expired, ending session")
	_ = c.port.Close()
}

// ErrNoDevice is returned by ListenSerial when the device does not exist.
var ErrNoDevice = errors.New("virtio-serial device not present")
