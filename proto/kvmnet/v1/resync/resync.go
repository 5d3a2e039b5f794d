// Package resync is the handshake both ends of a virtio-serial channel run on every new host
// connection, before HTTP/2 starts.
//
// A virtio-serial port is one byte stream that outlives its users: bytes the guest wrote while no
// host client was connected are delivered to the next host client, and bytes a host client wrote that
// the guest never read are still there after the host reconnects. Without a resynchronisation those
// stale bytes would corrupt the next HTTP/2 session. The exchange, as lines of text (each record is
// preceded and followed by '\n', so it always starts a fresh line after binary garbage):
//
//	host  -> guest  KVMNET/1 HELLO <nonce>   (fresh random nonce; resent until echoed)
//	guest -> host   KVMNET/1 ECHO <nonce>    (for every HELLO the guest reads)
//	host  -> guest  KVMNET/1 GO <nonce>      (once the host has read the echo of ITS nonce)
//	guest -> host   KVMNET/1 READY <nonce>   (guest hands the stream to HTTP/2 right after)
//
// Each side discards everything that is not the record it waits for. The GO/READY half makes a stale
// HELLO left in the guest's input, or a resent HELLO, harmless: the guest only starts HTTP/2 after a GO
// carrying the nonce it echoed last, and the host only after READY of its own nonce, so the first byte
// either HTTP/2 side reads belongs to the new session.
package resync

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

// Magic starts every handshake record.
const Magic = "KVMNET/1 "

// Record verbs.
const (
	VerbHello = "HELLO"
	VerbEcho  = "ECHO"
	VerbGo    = "GO"
	VerbReady = "READY"
)

// Poison is an HTTP/2 frame header announcing a 16 MiB frame of an unknown type on stream 0. The guest
// writes it whenever it (re)opens the port: an HTTP/2 client of a previous agent incarnation that
// still holds the host end fails at once with a frame-size error and redials, instead of hanging on a
// server that no longer knows its connection. A host in handshake mode discards it like any garbage.
var Poison = []byte{0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}

// DefaultResend is how often the host repeats its HELLO while waiting for the echo.
const DefaultResend = 500 * time.Millisecond

// maxPartial bounds the bytes of an unterminated line kept while scanning; records are ~50 bytes.
const maxPartial = 128

// NewNonce returns a fresh random nonce (32 lowercase hex digits).
func NewNonce() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("resync: random nonce: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// Record formats one handshake record, with its surrounding newlines.
func Record(verb, nonce string) []byte {
	return []byte("\n" + Magic + verb + " " + nonce + "\n")
}

// ParseRecord parses one line (without its trailing newline). It reports ok=false for anything that
// is not a well-formed record; bytes before the magic on the same line are ignored.
func ParseRecord(line []byte) (verb, nonce string, ok bool) {
	i := bytes.LastIndex(line, []byte(Magic))
	if i < 0 {
		return "", "", false
	}
	rest := line[i+len(Magic):]
	sp := bytes.IndexByte(rest, ' ')
	if sp < 0 {
		return "", "", false
	}
	verb, n := string(rest[:sp]), rest[sp+1:]
	switch verb {
	case VerbHello, VerbEcho, VerbGo, VerbReady:
	default:
		return "", "", false
	}
	if len(n) != 32 {
		return "", "", false
	}
	for _, c := range n {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", "", false
		}
	}
	return verb, string(n), true
}

// Scanner reads handshake records from a byte stream, discarding everything else. Bytes read past the
// last record returned stay buffered (see Rest): they belong to the protocol that follows.
type Scanner struct {
	r       io.Reader
	pending []byte
	// Discarded counts bytes thrown away (garbage, stale frames, records not waited for).
	Discarded int
	// MaxDiscard, when > 0, makes Next fail with ErrGarbage once more than this many bytes were
	// discarded.
	MaxDiscard int
}

// ErrGarbage is returned by Next when the peer sent more than MaxDiscard bytes that are not
// handshake records.
var ErrGarbage = errors.New("too much input that is not a handshake record")

// MaxStale is how many bytes of non-record input the host discards before it gives up: stale bytes
// are bounded by the port's ring plus one blocked write of an old session (12–80 KiB measured), so
// more than the largest gRPC message (4 MiB) means a guest that floods the channel. It then fails
// in milliseconds instead of holding the caller until its deadline.
const MaxStale = 4 << 20

// NewScanner returns a Scanner reading from r.
func NewScanner(r io.Reader) *Scanner { return &Scanner{r: r} }

// Next returns the next well-formed record. Read errors (including deadline timeouts) are returned
// as they are; the partial input is kept, so Next may be called again after a timeout.
func (s *Scanner) Next() (verb, nonce string, err error) {
	var buf [4096]byte
	for {
		for {
			nl := bytes.IndexByte(s.pending, '\n')
			if nl < 0 {
				break
			}
			line := s.pending[:nl]
			s.pending = s.pending[nl+1:]
			if v, n, ok := ParseRecord(line); ok {
				return v, n, nil
			}
			s.Discarded += len(line) + 1
		}
		if len(s.pending) > maxPartial {
			s.Discarded += len(s.pending)
			s.pending = s.pending[:0]
		}
		if s.MaxDiscard > 0 && s.Discarded > s.MaxDiscard {
			return "", "", fmt.Errorf("%w: %d bytes discarded", ErrGarbage, s.Discarded)
		}
		n, err := s.r.Read(buf[:])
		s.pending = append(s.pending, buf[:n]...)
		if err != nil {
			if n > 0 && errors.Is(err, io.EOF) {
				continue
			}
			return "", "", err
		}
	}
}

// Rest returns the buffered bytes that follow the last record returned by Next.
func (s *Scanner) Rest() []byte { return s.pending }

// Conn returns c with the scanner's buffered bytes replayed before further reads.
func (s *Scanner) Conn(c net.Conn) net.Conn {
	if len(s.pending) == 0 {
		return c
	}
	return &prefixConn{Conn: c, prefix: append([]byte(nil), s.pending...)}
}

type prefixConn struct {
	net.Conn
	prefix []byte
}

func (p *prefixConn) Read(b []byte) (int, error) {
	if len(p.prefix) > 0 {
		n := copy(b, p.prefix)
		p.prefix = p.prefix[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}

// Guest runs the guest half on rw: it answers every HELLO with an ECHO and returns after the GO of
// the last echoed nonce has been answered with READY. The returned scanner holds any bytes read past
// the GO. It returns the first read or write error (io.EOF when the host went away).
func Guest(rw io.ReadWriter) (*Scanner, string, error) {
	sc := NewScanner(rw)
	current := ""
	for {
		verb, nonce, err := sc.Next()
		if err != nil {
			return sc, "", err
		}
		switch verb {
		case VerbHello:
			if _, err := rw.Write(Record(VerbEcho, nonce)); err != nil {
				return sc, "", fmt.Errorf("resync: write echo: %w", err)
			}
			current = nonce
		case VerbGo:
			if nonce != current || current == "" {
				continue
			}
			if _, err := rw.Write(Record(VerbReady, nonce)); err != nil {
				return sc, "", fmt.Errorf("resync: write ready: %w", err)
			}
			return sc, nonce, nil
		}
	}
}

// Host runs the host half on c with a fresh nonce and returns the connection to give to HTTP/2 (c
// with any bytes read past READY replayed first). The context bounds the whole exchange; c's read
// deadline is used for resends and cleared on success. resend <= 0 means DefaultResend.
func Host(ctx context.Context, c net.Conn, resend time.Duration) (net.Conn, error) {
	if resend <= 0 {
		resend = DefaultResend
	}
	nonce, err := NewNonce()
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	fail := func(stage string, err error) (net.Conn, error) {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return nil, fmt.Errorf("resync: %s: %w; is kvmnet-agent running in the guest, is the channel named org.kvmnet.agent.0, and is no other client holding it (QEMU serves one at a time)?", stage, err)
	}
	hello := Record(VerbHello, nonce)
	if _, err := c.Write(hello); err != nil {
		return fail("write hello", err)
	}
	sc := NewScanner(c)
	sc.MaxDiscard = MaxStale
	// Wait for the echo of our nonce, resending HELLO on every quiet interval.
	for {
		if ctx.Err() != nil {
			return fail("wait for echo", ctx.Err())
		}
		_ = c.SetReadDeadline(time.Now().Add(resend))
		verb, n, err := sc.Next()
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() == nil {
				if _, err := c.Write(hello); err != nil {
					return fail("resend hello", err)
				}
				continue
			}
			return fail("wait for echo", err)
		}
		if verb == VerbEcho && n == nonce {
			break
		}
	}
	if _, err := c.Write(Record(VerbGo, nonce)); err != nil {
		return fail("write go", err)
	}
	for {
		if dl, ok := ctx.Deadline(); ok {
			_ = c.SetReadDeadline(dl)
		} else {
			_ = c.SetReadDeadline(time.Time{})
		}
		verb, n, err := sc.Next()
		if err != nil {
			return fail("wait for ready", err)
		}
		if verb == VerbReady && n == nonce {
			break
		}
	}
	if !stop() {
		return fail("finish", ctx.Err())
	}
	if err := c.SetDeadline(time.Time{}); err != nil {
		return fail("clear deadline", err)
	}
	return sc.Conn(c), nil
}
