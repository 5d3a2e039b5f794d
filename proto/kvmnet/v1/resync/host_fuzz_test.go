package resync

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// quiet in a FuzzHost input is a quiet interval: the read at that point times out, as when the
// guest sends nothing for the resend period.
const quiet = "~quiet~"

// guestConn is the host end of a channel whose guest sends a scripted byte stream. The script may
// name the host's nonce before it exists: every n1 in it becomes the nonce of the host's first
// HELLO, so inputs can answer the host (a guest can: it reads the HELLO). n2 stays a stale nonce.
type guestConn struct {
	mu        sync.Mutex
	script    []byte
	nonce     string
	delivered bytes.Buffer // guest bytes the host has read, quiet marks left out
	written   bytes.Buffer
	atGo      int // delivered bytes when the host wrote GO; -1 before
	quiets    int // quiet intervals delivered while the host had not written GO
	expired   bool
	cleared   bool // the last SetDeadline was the zero time
}

func (c *guestConn) Read(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.expired {
		return 0, os.ErrDeadlineExceeded
	}
	if c.nonce == "" {
		return 0, errors.New("host read before writing its HELLO")
	}
	if bytes.HasPrefix(c.script, []byte(quiet)) {
		c.script = c.script[len(quiet):]
		if c.atGo < 0 {
			c.quiets++
		}
		return 0, os.ErrDeadlineExceeded
	}
	if len(c.script) == 0 {
		return 0, io.EOF
	}
	end := len(c.script)
	if i := bytes.Index(c.script, []byte(quiet)); i >= 0 {
		end = i
	}
	// Short reads (up to 61 bytes) split records across reads, as a real channel does.
	n := copy(b[:min(len(b), 61)], c.script[:end])
	c.delivered.Write(c.script[:n])
	c.script = c.script[n:]
	return n, nil
}

func (c *guestConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nonce == "" {
		if v, n, ok := ParseRecord(bytes.Trim(b, "\n")); ok && v == VerbHello {
			c.nonce = n
			c.script = bytes.ReplaceAll(c.script, []byte(n1), []byte(n))
		}
	}
	if bytes.Equal(b, Record(VerbGo, c.nonce)) && c.atGo < 0 {
		c.atGo = c.delivered.Len()
	}
	return c.written.Write(b)
}

func (c *guestConn) deadline(t time.Time) {
	c.mu.Lock()
	c.expired = !t.IsZero() && time.Now().After(t)
	c.cleared = t.IsZero()
	c.mu.Unlock()
}

func (c *guestConn) SetDeadline(t time.Time) error      { c.deadline(t); return nil }
func (c *guestConn) SetReadDeadline(t time.Time) error  { c.deadline(t); return nil }
func (c *guestConn) SetWriteDeadline(t time.Time) error { return nil }
func (c *guestConn) Close() error                       { return nil }
func (c *guestConn) LocalAddr() net.Addr                { return &net.UnixAddr{Name: "host", Net: "unix"} }
func (c *guestConn) RemoteAddr() net.Addr               { return &net.UnixAddr{Name: "guest", Net: "unix"} }

// FuzzHost runs the host half of the handshake against a hostile guest: arbitrary bytes (stale
// frames, garbage, forged and stale records, records split across reads, quiet intervals) in which
// n1 stands for the host's nonce. It must not panic or hang. The host writes nothing but HELLOs of
// its nonce (one more per quiet interval while it waits for the echo) and at most one GO, only after
// it has read the ECHO of its nonce. It succeeds only after reading READY of its nonce, and then
// hands HTTP/2 exactly the bytes that followed that READY; a failure says what to check.
func FuzzHost(f *testing.F) {
	rec := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	f.Add(rec(Record(VerbEcho, n1), Record(VerbReady, n1)))
	f.Add(rec(Poison, []byte("\x00\xffstale frame"), Record(VerbEcho, n2), Record(VerbEcho, n1), Record(VerbReady, n2), Record(VerbReady, n1),
		[]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")))
	f.Add(rec([]byte(quiet+quiet), Record(VerbEcho, n1), Record(VerbReady, n1)))
	f.Add(rec(Record(VerbEcho, n1), []byte(quiet), Record(VerbReady, n1)))
	f.Add(rec(Record(VerbReady, n1), Record(VerbEcho, n2)))
	f.Add(rec(Record(VerbHello, n1), Record(VerbGo, n1)))
	f.Add([]byte("\n" + Magic + "ECHO " + n1))
	f.Add([]byte("\xff\xff" + Magic + "ECHO " + n1 + "\n\x00" + Magic + "READY " + n1 + "\n\x00\x00\x04\x08"))
	f.Fuzz(func(t *testing.T, script []byte) {
		c := &guestConn{script: append([]byte(nil), script...), atGo: -1}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		hc, err := Host(ctx, c, time.Hour)
		if ctx.Err() != nil {
			t.Fatalf("Host ran until its deadline against a guest that never blocks: %v", err)
		}
		c.mu.Lock()
		nonce, written, delivered, atGo, quiets := c.nonce, c.written.Bytes(), c.delivered.Bytes(), c.atGo, c.quiets
		c.mu.Unlock()
		if nonce == "" {
			t.Fatalf("Host did not start with a HELLO; wrote %q", written)
		}
		hello, gorec := Record(VerbHello, nonce), Record(VerbGo, nonce)
		rest := written
		hellos := 0
		for bytes.HasPrefix(rest, hello) {
			rest = rest[len(hello):]
			hellos++
		}
		if len(rest) != 0 && !bytes.Equal(rest, gorec) {
			t.Fatalf("Host wrote %q after %d HELLOs: only one GO of its nonce may follow", rest, hellos)
		}
		if hellos != 1+quiets {
			t.Fatalf("Host wrote %d HELLOs after %d quiet intervals", hellos, quiets)
		}
		echo := []byte(Magic + VerbEcho + " " + nonce + "\n")
		if atGo >= 0 && !bytes.Contains(delivered[:atGo], echo) {
			t.Fatalf("Host wrote GO before it read the echo of its nonce (read %q)", delivered[:atGo])
		}
		if err != nil {
			if hc != nil || !strings.HasPrefix(err.Error(), "resync: ") || !strings.Contains(err.Error(), "is kvmnet-agent running") {
				t.Fatalf("Host failed with %v (conn %v): want a resync error saying what to check", err, hc)
			}
			if !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrDeadlineExceeded) && !errors.Is(err, ErrGarbage) {
				t.Fatalf("Host failed with %v on a stream that only ends or goes quiet", err)
			}
			return
		}
		if atGo < 0 || !c.cleared {
			t.Fatalf("Host succeeded without writing GO (%q) or with its deadline still set (cleared=%t)", written, c.cleared)
		}
		// What HTTP/2 gets is exactly what followed the first READY of our nonce after the GO.
		var tail bytes.Buffer
		buf := make([]byte, 100)
		for {
			n, rerr := hc.Read(buf)
			tail.Write(buf[:n])
			if rerr != nil && !errors.Is(rerr, os.ErrDeadlineExceeded) {
				break
			}
		}
		stream := bytes.ReplaceAll(bytes.ReplaceAll(script, []byte(n1), []byte(nonce)), []byte(quiet), nil)
		ready := []byte(Magic + VerbReady + " " + nonce + "\n")
		head := stream[:len(stream)-tail.Len()]
		if !bytes.HasSuffix(stream, tail.Bytes()) || !bytes.HasSuffix(head, ready) || !bytes.Contains(stream[:len(head)-len(ready)], echo) {
			t.Fatalf("bytes handed on (%q) are not exactly what followed READY of nonce %s in %q", tail.Bytes(), nonce, stream)
		}
	})
}
