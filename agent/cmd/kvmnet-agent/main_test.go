package main

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/kvmnet/kvmnet/agent/config"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

type fakeService struct {
	kvmnetv1.UnimplementedAgentServer
	version string
	closed  chan struct{}
}

func (f *fakeService) GetState(context.Context, *kvmnetv1.GetStateRequest) (*kvmnetv1.GuestState, error) {
	return &kvmnetv1.GuestState{AgentVersion: f.version}, nil
}
func (f *fakeService) Apply(context.Context, *kvmnetv1.ApplyRequest) (*kvmnetv1.ApplyResponse, error) {
	return &kvmnetv1.ApplyResponse{}, nil
}
func (f *fakeService) Close() error { close(f.closed); return nil }

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestParseFlagsAndMerge(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		file    config.Config
		want    []string
		level   string
		wantErr string
	}{
		{name: "config file listen kept", args: nil, file: config.Default(),
			want: []string{"virtio-serial:/dev/virtio-ports/org.kvmnet.agent.0", "vsock:7531"}, level: "info"},
		{name: "--listen replaces", args: []string{"--listen", "unix:/run/a.sock", "--listen", "vsock:9"}, file: config.Default(),
			want: []string{"unix:/run/a.sock", "vsock:9"}, level: "info"},
		{name: "--vsock-port and --serial-device rewrite", args: []string{"--vsock-port", "7000", "--serial-device", "/dev/vport2p1", "--log-level", "debug"},
			file: config.Default(), want: []string{"virtio-serial:/dev/vport2p1", "vsock:7000"}, level: "debug"},
		{name: "bad --listen", args: []string{"--listen", "tcp:1"}, file: config.Default(), wantErr: "unknown transport"},
		{name: "bad --log-level", args: []string{"--log-level", "loud"}, file: config.Default(), wantErr: "log_level"},
		{name: "stray argument", args: []string{"serve"}, file: config.Default(), wantErr: "unexpected arguments"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := parseFlags(tc.args, &bytes.Buffer{})
			var cfg config.Config
			if err == nil {
				cfg, err = merge(tc.file, f)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(cfg.Listen, " ") != strings.Join(tc.want, " ") || cfg.LogLevel != tc.level {
				t.Fatalf("listen %q level %q, want %q %q", cfg.Listen, cfg.LogLevel, tc.want, tc.level)
			}
		})
	}
}

func TestLoggerJournald(t *testing.T) {
	for _, journald := range []bool{false, true} {
		var b bytes.Buffer
		newLogger(&b, "info", journald).Info("hello", "k", "v")
		newLogger(&b, "info", journald).Debug("hidden")
		has := strings.Contains(b.String(), "time=")
		if has == journald || !strings.Contains(b.String(), "level=INFO msg=hello k=v") || strings.Contains(b.String(), "hidden") {
			t.Errorf("journald=%v: %q", journald, b.String())
		}
	}
}

// TestRunServesOnUnixSocket runs the agent's main on a unix socket with a report-only config file,
// checks sd_notify READY=1, the gate, GetState, and a clean stop on cancellation.
func TestRunServesOnUnixSocket(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "agent.sock")
	cfgPath := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(cfgPath, []byte("allow_apply: false\nlisten: [\"vsock:7531\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: filepath.Join(dir, "notify"), Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer notify.Close()
	envs := map[string]string{"NOTIFY_SOCKET": filepath.Join(dir, "notify"), "JOURNAL_STREAM": "8:1234"}
	e := env{getenv: func(k string) string { return envs[k] }, exists: func(string) bool { return false }}
	svc := &fakeService{closed: make(chan struct{})}
	newSvc := func(v string, cfg config.Config, _ *slog.Logger) (Service, error) {
		if cfg.AllowApply {
			t.Errorf("config file's allow_apply: false not passed to the service")
		}
		svc.version = v
		return svc, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	var logs syncBuf
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--config", cfgPath, "--listen", "unix:" + sock}, e, &logs, newSvc)
	}()
	_ = notify.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 256)
	n, err := notify.Read(buf)
	if err != nil || !strings.HasPrefix(string(buf[:n]), "READY=1") {
		t.Fatalf("sd_notify = %q, %v; logs:\n%s", buf[:n], err, logs.String())
	}
	cc, err := grpc.NewClient("unix:"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	c := kvmnetv1.NewAgentClient(cc)
	rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer rcancel()
	if st, err := c.GetState(rctx, &kvmnetv1.GetStateRequest{}); err != nil || st.GetAgentVersion() != version {
		t.Fatalf("GetState = %v, %v", st, err)
	}
	if _, err := c.Apply(rctx, &kvmnetv1.ApplyRequest{}); status.Code(err) != codes.PermissionDenied ||
		!strings.Contains(err.Error(), cfgPath) {
		t.Fatalf("Apply in report-only mode = %v, want PermissionDenied naming %s", err, cfgPath)
	}
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, %v", fi, err)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit code %d; logs:\n%s", code, logs.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("agent did not stop within 10s of cancellation")
	}
	n, _ = notify.Read(buf)
	if string(buf[:n]) != "STOPPING=1" {
		t.Errorf("second notification = %q, want STOPPING=1", buf[:n])
	}
	select {
	case <-svc.closed:
	default:
		t.Error("service not closed")
	}
	if strings.Contains(logs.String(), "time=") {
		t.Errorf("timestamps logged under journald:\n%s", logs.String())
	}
}

// TestRunNoTransport: with no device present and no --listen, the agent exits 1 saying what to do.
func TestRunNoTransport(t *testing.T) {
	e := env{getenv: func(string) string { return "" }, exists: func(string) bool { return false }}
	var logs syncBuf
	newSvc := func(string, config.Config, *slog.Logger) (Service, error) {
		return &fakeService{closed: make(chan struct{})}, nil
	}
	code := run(context.Background(), []string{"--config", filepath.Join(t.TempDir(), "none.yaml")}, e, &logs, newSvc)
	if code != 1 || !strings.Contains(logs.String(), "no transport could be opened") ||
		!strings.Contains(logs.String(), "/dev/vsock") {
		t.Fatalf("exit %d, logs:\n%s", code, logs.String())
	}
}

func TestRunUsageErrors(t *testing.T) {
	e := env{getenv: func(string) string { return "" }, exists: func(string) bool { return false }}
	for _, args := range [][]string{{"--bogus"}, {"--listen", "x"}} {
		var out syncBuf
		if code := run(context.Background(), args, e, &out, nil); code != 2 {
			t.Errorf("%q: exit %d, want 2 (%s)", args, code, out.String())
		}
	}
	var out syncBuf
	if code := run(context.Background(), []string{"--version"}, e, &out, nil); code != 0 || !strings.Contains(out.String(), version) {
		t.Errorf("--version: exit %d %q", code, out.String())
	}
}
