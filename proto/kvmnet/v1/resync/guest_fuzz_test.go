package resync

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// rw reads the host's bytes and records what the guest writes back.
type rw struct {
	r io.Reader
	w bytes.Buffer
}

func (x *rw) Read(b []byte) (int, error)  { return x.r.Read(b) }
func (x *rw) Write(b []byte) (int, error) { return x.w.Write(b) }

// FuzzGuest runs the guest half of the handshake against arbitrary host bytes (stale frames,
// garbage, partial and forged records). It must not panic or loop; it succeeds only after a GO
// whose nonce it echoed last; everything it writes is an ECHO or READY record for a nonce the host
// sent; and the bytes it hands to HTTP/2 afterwards are exactly the input that followed the GO.
func FuzzGuest(f *testing.F) {
	f.Add(append(Record(VerbHello, n1), Record(VerbGo, n1)...))
	f.Add(append(append(append([]byte("stale frames\x00\x00"), Record(VerbHello, n1)...), Record(VerbHello, n2)...), append(Record(VerbGo, n1), Record(VerbGo, n2)...)...))
	f.Add(append(append(Record(VerbHello, n1), Record(VerbGo, n1)...), []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")...))
	f.Add(append(append([]byte{}, Poison...), Record(VerbGo, n2)...))
	f.Add([]byte("\n" + Magic + "HELLO \n" + Magic + "GO \n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		in := bytes.NewReader(data)
		x := &rw{r: in}
		sc, nonce, err := Guest(x)
		out := NewScanner(bytes.NewReader(x.w.Bytes()))
		var last string
		for {
			v, n, rerr := out.Next()
			if rerr != nil {
				break
			}
			if v != VerbEcho && v != VerbReady {
				t.Fatalf("guest wrote a %s record", v)
			}
			if !bytes.Contains(data, Record(VerbHello, n)) && !bytes.Contains(data, []byte(Magic+VerbHello+" "+n)) {
				t.Fatalf("guest answered nonce %q the host never sent", n)
			}
			last = v + " " + n
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("unexpected error on an in-memory stream: %v", err)
			}
			return
		}
		if last != VerbReady+" "+nonce {
			t.Fatalf("succeeded with nonce %q but the last record written was %q", nonce, last)
		}
		unread, _ := io.ReadAll(in)
		tail := append(append([]byte{}, sc.Rest()...), unread...)
		if !bytes.HasSuffix(data, tail) || !bytes.HasSuffix(data[:len(data)-len(tail)], []byte(Magic+VerbGo+" "+nonce+"\n")) {
			t.Fatalf("bytes handed on (%q) are not exactly what followed the GO record", tail)
		}
	})
}
