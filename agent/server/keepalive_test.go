package server

import (
	"context"
	"errors"
	"io"
	"math"
	"net"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/kvmnet/kvmnet/agent/transport"
)

// rawHost is a host that speaks just enough HTTP/2 to open a connection and then never answers
// anything: it records the frames the agent sends it.
type rawHost struct {
	conn net.Conn
	fr   *http2.Framer
}

func dialRaw(t *testing.T, opts Options) *rawHost {
	t.Helper()
	path := filepath.Join(t.TempDir(), "agent.sock")
	l, err := transport.ListenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	s := New(&fakeAgent{}, opts)
	go func() { _ = s.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Stop(ctx)
	})
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return &rawHost{conn: c, fr: fr}
}

// frames reads what the agent sends for d (or until it closes the connection) and returns the
// frame types seen and whether the connection was closed.
func (h *rawHost) frames(t *testing.T, d time.Duration) (seen []http2.FrameType, closed bool) {
	t.Helper()
	_ = h.conn.SetReadDeadline(time.Now().Add(d))
	for {
		f, err := h.fr.ReadFrame()
		var ne net.Error
		switch {
		case err == nil:
			seen = append(seen, f.Header().Type)
			if f.Header().Type == http2.FrameGoAway {
				return seen, true
			}
		case errors.As(err, &ne) && ne.Timeout():
			return seen, false
		default: // EOF or reset: the agent hung up
			return seen, true
		}
	}
}

func count(seen []http2.FrameType, ft http2.FrameType) int {
	n := 0
	for _, s := range seen {
		if s == ft {
			n++
		}
	}
	return n
}

// TestHostKeepalive: by default the agent never pings a connected, silent host (no periodic wakeup
// while idle); with HostKeepalive set it pings after that long and drops a host that does not answer
// within 5 s, which frees a single-client port held by a hung host process.
func TestHostKeepalive(t *testing.T) {
	if got := keepaliveTime(0); got != time.Duration(math.MaxInt64) {
		t.Fatalf("keepaliveTime(0) = %v, want never", got)
	}
	t.Run("default sends no pings", func(t *testing.T) {
		t.Parallel()
		h := dialRaw(t, Options{})
		seen, closed := h.frames(t, 3*time.Second)
		if n := count(seen, http2.FramePing); n != 0 || closed {
			t.Fatalf("idle host with HostKeepalive 0: %d pings, closed=%v (frames %v)", n, closed, seen)
		}
		t.Logf("frames in 3 s: %v", seen)
	})
	t.Run("pings and drops a silent host", func(t *testing.T) {
		t.Parallel()
		start := time.Now()
		h := dialRaw(t, Options{HostKeepalive: time.Second})
		seen, closed := h.frames(t, 15*time.Second)
		if n := count(seen, http2.FramePing); n == 0 {
			t.Fatalf("HostKeepalive 1s: no ping in %v (frames %v)", time.Since(start), seen)
		}
		if !closed {
			t.Fatalf("HostKeepalive 1s: silent host still connected after 15 s (frames %v)", seen)
		}
		t.Logf("silent host dropped after %v, frames %v", time.Since(start).Round(10*time.Millisecond), seen)
	})
}
