package transport

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestListenUnix(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, path string)
		wantErr string
	}{
		{name: "fresh path in a missing directory", prepare: func(*testing.T, string) {}},
		{name: "stale socket is removed", prepare: func(t *testing.T, path string) {
			l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
			if err != nil {
				t.Fatal(err)
			}
			l.SetUnlinkOnClose(false)
			l.Close()
			if _, err := os.Stat(path); err != nil {
				t.Fatalf("stale socket not left behind: %v", err)
			}
		}},
		{name: "live socket is refused", wantErr: "in use", prepare: func(t *testing.T, path string) {
			l, err := net.Listen("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
		}},
		{name: "regular file is not removed", wantErr: "is not a socket", prepare: func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("keep"), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "run", "kvmnet")
			path := filepath.Join(dir, "agent.sock")
			if tc.name != "fresh path in a missing directory" {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			tc.prepare(t, path)
			l, err := ListenUnix(path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ListenUnix error = %v, want %q", err, tc.wantErr)
				}
				if _, err := os.Stat(path); err != nil {
					t.Fatalf("existing file was removed: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ListenUnix: %v", err)
			}
			defer l.Close()
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != SocketMode {
				t.Fatalf("socket mode = %v, want socket %o", fi.Mode(), SocketMode)
			}
			// It really serves.
			go func() {
				if c, err := l.Accept(); err == nil {
					c.Write([]byte("ok"))
					c.Close()
				}
			}()
			c, err := net.Dial("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			buf := make([]byte, 2)
			if _, err := c.Read(buf); err != nil || string(buf) != "ok" {
				t.Fatalf("read %q %v", buf, err)
			}
		})
	}
}

func TestParseSpec(t *testing.T) {
	tests := []struct {
		in      string
		want    Spec
		wantErr string
	}{
		{in: "unix:/run/kvmnet/agent.sock", want: Spec{Kind: "unix", Path: "/run/kvmnet/agent.sock"}},
		{in: "vsock:7531", want: Spec{Kind: "vsock", Port: 7531}},
		{in: "virtio-serial:/dev/virtio-ports/org.kvmnet.agent.0", want: Spec{Kind: "virtio-serial", Path: "/dev/virtio-ports/org.kvmnet.agent.0"}},
		{in: "serial:/dev/vport1p1", want: Spec{Kind: "virtio-serial", Path: "/dev/vport1p1"}},
		{in: "unix:rel.sock", wantErr: "absolute"},
		{in: "vsock:0", wantErr: "vsock port"},
		{in: "vsock:x", wantErr: "vsock port"},
		{in: "tcp:1.2.3.4:5", wantErr: "unknown transport"},
		{in: "/x", wantErr: "want unix:/path"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseSpec(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseSpec error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseSpec = %+v, %v; want %+v", got, err, tc.want)
			}
			if tc.in != "serial:/dev/vport1p1" && got.String() != tc.in {
				t.Fatalf("String() = %q, want %q", got.String(), tc.in)
			}
		})
	}
}
