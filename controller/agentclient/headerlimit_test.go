package agentclient

import (
	"bytes"
	"context"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// hugeStatus is a status message just under gRPC's own 16 MiB header list default: it fits that
// limit, and is four times the 4 MiB message cap.
const hugeStatus = 16<<20 - 1<<10

// serveHugeTrailers is a hostile agent speaking raw HTTP/2 on l: it answers every request with a
// status whose message is msgLen bytes, sent in the trailers (HEADERS + CONTINUATION frames),
// whatever header list size the client announced.
func serveHugeTrailers(t *testing.T, l net.Listener, msgLen int) {
	t.Helper()
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	_ = enc.WriteField(hpack.HeaderField{Name: "grpc-status", Value: "13"})
	_ = enc.WriteField(hpack.HeaderField{Name: "grpc-message", Value: strings.Repeat("A", msgLen)})
	trailers := block.Bytes()
	var head bytes.Buffer
	enc = hpack.NewEncoder(&head)
	_ = enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
	_ = enc.WriteField(hpack.HeaderField{Name: "content-type", Value: "application/grpc"})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				preface := make([]byte, len(http2.ClientPreface))
				if _, err := io.ReadFull(c, preface); err != nil {
					return
				}
				fr := http2.NewFramer(c, c)
				if fr.WriteSettings() != nil {
					return
				}
				for {
					f, err := fr.ReadFrame()
					if err != nil {
						return
					}
					switch f := f.(type) {
					case *http2.SettingsFrame:
						if !f.IsAck() {
							_ = fr.WriteSettingsAck()
						}
					case *http2.PingFrame:
						if !f.IsAck() {
							_ = fr.WritePing(true, f.Data)
						}
					case *http2.HeadersFrame:
						id := f.StreamID
						_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: head.Bytes(), EndHeaders: true})
						const chunk = 16 << 10 // the default SETTINGS_MAX_FRAME_SIZE
						rest := trailers
						first := rest[:min(chunk, len(rest))]
						rest = rest[len(first):]
						if fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: first, EndStream: true, EndHeaders: len(rest) == 0}) != nil {
							return
						}
						for len(rest) > 0 {
							n := min(chunk, len(rest))
							if fr.WriteContinuation(id, n == len(rest), rest[:n]) != nil {
								return // the client hung up: what this test wants
							}
							rest = rest[n:]
						}
					}
				}
			}()
		}
	}()
}

// TestHeaderListSizeLimit: an agent cannot push a status message past the 4 MiB message cap through
// the trailers. Without the limit gRPC reads it whole (the first case shows what the limit
// prevents); with it the call fails at once with an error that says why, and the message never
// reaches the caller.
func TestHeaderListSizeLimit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hostile.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	serveHugeTrailers(t, l, hugeStatus)

	t.Run("gRPC default reads it", func(t *testing.T) {
		cc, err := grpc.NewClient("passthrough:///x", grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", path)
			}))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err = kvmnetv1.NewAgentClient(cc).GetState(ctx, &kvmnetv1.GetStateRequest{})
		if n := len(status.Convert(err).Message()); n < hugeStatus {
			t.Fatalf("gRPC's default delivered a %d-byte message, want the whole %d (is the default limit lower now?): %.200v", n, hugeStatus, err)
		}
	})

	// A list just over the limit (each value under it) ends the stream instead of the connection.
	overPath := filepath.Join(t.TempDir(), "over.sock")
	over, err := net.Listen("unix", overPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = over.Close() })
	serveHugeTrailers(t, over, MaxHeaderListSize-20)
	for _, tc := range []struct{ name, path string }{
		{"kvmnet's client refuses a 16 MiB status", path},
		{"kvmnet's client refuses a list just over the limit", overPath},
	} {
		t.Run(tc.name, func(t *testing.T) { refused(t, tc.path) })
	}
}

func refused(t *testing.T, path string) {
	t.Helper()
	c, err := Dial(context.Background(), "unix:"+path, WithDialTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	_, err = c.GetState(ctx, &kvmnetv1.GetStateRequest{})
	t.Logf("refused after %s: %.300v", time.Since(start), err)
	if err == nil {
		t.Fatal("GetState succeeded against an agent that only sends huge trailers")
	}
	if len(err.Error()) > 1<<10 {
		t.Fatalf("the %d-byte error carries the message: %.200s", len(err.Error()), err)
	}
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "headers or trailers exceed 64 KiB") {
		t.Fatalf("error does not say the headers were too large: %v", err)
	}
}
