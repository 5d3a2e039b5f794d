// Package dnstest runs a tiny authoritative DNS server on 127.0.0.1 for tests: A and AAAA answers
// from a map, NXDOMAIN for everything else. It serves UDP only (Go's resolver uses UDP first).
// Imported by _test.go files only; it never sends traffic anywhere but to its loopback clients.
package dnstest

import (
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// Server is a running test DNS server.
type Server struct {
	// Addr is "127.0.0.1:port".
	Addr    string
	conn    net.PacketConn
	queries atomic.Int64
}

// Queries returns how many queries the server has answered.
func (s *Server) Queries() int64 { return s.queries.Load() }

// Start serves records (fully qualified or not: "example.test" and "example.test." are the same)
// until the test ends.
func Start(t testing.TB, records map[string][]netip.Addr) *Server {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Addr: conn.LocalAddr().String(), conn: conn}
	norm := map[string][]netip.Addr{}
	for k, v := range records {
		norm[strings.ToLower(strings.TrimSuffix(k, "."))+"."] = v
	}
	done := make(chan struct{})
	t.Cleanup(func() { conn.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp, ok := answer(buf[:n], norm); ok {
				s.queries.Add(1)
				_, _ = conn.WriteTo(resp, from)
			}
		}
	}()
	return s
}

func answer(q []byte, records map[string][]netip.Addr) ([]byte, bool) {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil {
		return nil, false
	}
	qs, err := p.AllQuestions()
	if err != nil || len(qs) != 1 {
		return nil, false
	}
	question := qs[0]
	name := strings.ToLower(question.Name.String())
	addrs, known := records[name]
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true}
	if !known {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	if b.StartQuestions() != nil || b.Question(question) != nil || b.StartAnswers() != nil {
		return nil, false
	}
	for _, a := range addrs {
		rrh := dnsmessage.ResourceHeader{Name: question.Name, Class: dnsmessage.ClassINET, TTL: 60}
		switch {
		case question.Type == dnsmessage.TypeA && a.Is4():
			if b.AResource(rrh, dnsmessage.AResource{A: a.As4()}) != nil {
				return nil, false
			}
		case question.Type == dnsmessage.TypeAAAA && a.Is6():
			if b.AAAAResource(rrh, dnsmessage.AAAAResource{AAAA: a.As16()}) != nil {
				return nil, false
			}
		}
	}
	out, err := b.Finish()
	return out, err == nil
}
