package resync

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

const n1 = "0123456789abcdef0123456789abcdef"
const n2 = "fedcba9876543210fedcba9876543210"

func TestParseRecord(t *testing.T) {
	tests := []struct {
		name      string
		line      string
		verb, non string
		ok        bool
	}{
		{"hello", Magic + "HELLO " + n1, "HELLO", n1, true},
		{"echo after garbage on the same line", "\xff\xff\x00" + Magic + "ECHO " + n1, "ECHO", n1, true},
		{"go", Magic + "GO " + n2, "GO", n2, true},
		{"ready", Magic + "READY " + n2, "READY", n2, true},
		{"unknown verb", Magic + "HI " + n1, "", "", false},
		{"short nonce", Magic + "HELLO abc", "", "", false},
		{"uppercase nonce", Magic + "HELLO " + strings.ToUpper(n1), "", "", false},
		{"trailing junk", Magic + "HELLO " + n1 + "x", "", "", false},
		{"no magic", "HELLO " + n1, "", "", false},
		{"no verb", Magic, "", "", false},
		{"empty", "", "", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, n, ok := ParseRecord([]byte(tc.line))
			if v != tc.verb || n != tc.non || ok != tc.ok {
				t.Fatalf("ParseRecord(%q) = %q %q %v, want %q %q %v", tc.line, v, n, ok, tc.verb, tc.non, tc.ok)
			}
		})
	}
}

func TestScannerSkipsGarbageAndKeepsRest(t *testing.T) {
	garbage := bytes.Repeat([]byte{0x00, 0xff, 'K', 'V'}, 20000) // 80 KB without a newline
	var in bytes.Buffer
	in.Write(Poison)
	in.Write(garbage)
	in.Write(Record(VerbEcho, n2)) // stale echo of another nonce
	in.WriteString("\nKVMNET/1 HELLO shortnonce\n")
	in.Write(Record(VerbHello, n1))
	in.WriteString("PRI * HTTP/2.0")
	// One byte per read: records split across reads must still be found.
	sc := NewScanner(iotest.OneByteReader(bytes.NewReader(in.Bytes())))
	var got []string
	for range 2 {
		v, n, err := sc.Next()
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		got = append(got, v+" "+n)
	}
	if want := []string{"ECHO " + n2, "HELLO " + n1}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("records = %q, want %q", got, want)
	}
	if _, _, err := sc.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("Next at end = %v, want EOF", err)
	}
	if string(sc.Rest()) != "PRI * HTTP/2.0" {
		t.Fatalf("Rest = %q", sc.Rest())
	}
	if sc.Discarded < len(garbage) {
		t.Fatalf("Discarded = %d, want >= %d", sc.Discarded, len(garbage))
	}
}

// TestHandshake runs both halves over a real unix socket pair with stale input on both sides, a
// stale HELLO+GO of a previous session in the guest's input, and checks the first bytes each side
// reads afterwards belong to the new session.
func TestHandshake(t *testing.T) {
	hostEnd, guestEnd := unixPair(t)
	type result struct {
		rest []byte
		err  error
	}
	guestDone := make(chan result, 1)
	// What a previous host session left unread in the guest, written before the new host starts.
	stale := append(append([]byte("stale http2 bytes\n"), Record(VerbHello, n2)...), Record(VerbGo, n2)...)
	go func() {
		// The guest first answers the stale session (echo + ready for n2), as the real guest would.
		sc, nonce, err := Guest(guestEnd)
		if err != nil || nonce != n2 {
			guestDone <- result{nil, err}
			return
		}
		// HTTP/2 of the stale session would fail on the new HELLO; the guest restarts on the same
		// stream (with the bytes the first scanner read ahead).
		rest := sc.Conn(guestEnd)
		sc2, _, err := Guest(rest)
		if err != nil {
			guestDone <- result{nil, err}
			return
		}
		buf := make([]byte, 5)
		c := sc2.Conn(rest)
		_, err = io.ReadFull(c, buf)
		if err == nil {
			_, err = c.Write([]byte("world"))
		}
		guestDone <- result{buf, err}
	}()
	if _, err := hostEnd.Write(stale); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hc, err := Host(ctx, hostEnd, 50*time.Millisecond)
	if err != nil {
		t.Fatalf("Host: %v", err)
	}
	if _, err := hc.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(hc, buf); err != nil {
		t.Fatal(err)
	}
	r := <-guestDone
	if r.err != nil {
		t.Fatalf("guest: %v", r.err)
	}
	if string(r.rest) != "hello" || string(buf) != "world" {
		t.Fatalf("after handshake guest read %q host read %q, want hello/world", r.rest, buf)
	}
}

func TestHostTimesOutWithoutGuest(t *testing.T) {
	hostEnd, _ := unixPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := Host(ctx, hostEnd, 50*time.Millisecond)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "kvmnet-agent running") {
		t.Fatalf("Host without a guest = %v, want a deadline error saying what to check", err)
	}
}

func FuzzScanner(f *testing.F) {
	f.Add(Record(VerbHello, n1))
	f.Add(append(append([]byte{}, Poison...), Record(VerbGo, n2)...))
	f.Add([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
	f.Add([]byte("\n" + Magic + "HELLO \n" + Magic))
	f.Fuzz(func(t *testing.T, data []byte) {
		sc := NewScanner(bytes.NewReader(data))
		for range 1000 {
			v, n, err := sc.Next()
			if err != nil {
				return
			}
			if _, _, ok := ParseRecord([]byte(Magic + v + " " + n)); !ok {
				t.Fatalf("Next returned a record ParseRecord rejects: %q %q", v, n)
			}
		}
	})
}

func unixPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	p := t.TempDir() + "/s"
	l, err := net.Listen("unix", p)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	a, err := net.Dial("unix", p)
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// TestHostGivesUpOnFlood: a guest that floods the channel with bytes that are never a handshake
// record makes the host fail with ErrGarbage once MaxStale bytes were discarded, instead of holding
// the caller until its deadline (the flood keeps the resend timer from ever firing).
func TestHostGivesUpOnFlood(t *testing.T) {
	host, guest := unixPair(t)
	done := make(chan struct{})
	defer close(done)
	go func() {
		junk := bytes.Repeat([]byte("\x00garbage\xff\n"), 4096)
		for {
			select {
			case <-done:
				return
			default:
			}
			if _, err := guest.Write(junk); err != nil {
				return
			}
		}
	}()
	go func() { _, _ = io.Copy(io.Discard, guest) }() // the guest never answers our HELLO
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err := Host(ctx, host, time.Second)
	if !errors.Is(err, ErrGarbage) || ctx.Err() != nil {
		t.Fatalf("Host against a flooding guest = %v (ctx %v), want ErrGarbage before the deadline", err, ctx.Err())
	}
}
