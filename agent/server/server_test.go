package server

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/kvmnet/kvmnet/agent/transport"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// fakeAgent records calls; GetState reports the deadline it saw.
type fakeAgent struct {
	kvmnetv1.UnimplementedAgentServer
	mu       sync.Mutex
	applied  int
	deadline time.Duration
}

func (f *fakeAgent) GetState(ctx context.Context, _ *kvmnetv1.GetStateRequest) (*kvmnetv1.GuestState, error) {
	dl, _ := ctx.Deadline()
	f.mu.Lock()
	f.deadline = time.Until(dl)
	f.mu.Unlock()
	return &kvmnetv1.GuestState{Hostname: "guest1"}, nil
}

func (f *fakeAgent) Apply(context.Context, *kvmnetv1.ApplyRequest) (*kvmnetv1.ApplyResponse, error) {
	f.mu.Lock()
	f.applied++
	f.mu.Unlock()
	return &kvmnetv1.ApplyResponse{CheckpointId: "cp1"}, nil
}

func (f *fakeAgent) Confirm(context.Context, *kvmnetv1.ConfirmRequest) (*kvmnetv1.ConfirmResponse, error) {
	return &kvmnetv1.ConfirmResponse{}, nil
}

func (f *fakeAgent) Rollback(context.Context, *kvmnetv1.RollbackRequest) (*kvmnetv1.RollbackResponse, error) {
	return &kvmnetv1.RollbackResponse{}, nil
}

func (f *fakeAgent) RunChecks(context.Context, *kvmnetv1.RunChecksRequest) (*kvmnetv1.RunChecksResponse, error) {
	return &kvmnetv1.RunChecksResponse{}, nil
}

func (f *fakeAgent) Watch(_ *kvmnetv1.WatchRequest, s grpc.ServerStreamingServer[kvmnetv1.Event]) error {
	return s.Send(&kvmnetv1.Event{Summary: "enp1s0 up"})
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func start(t *testing.T, svc kvmnetv1.AgentServer, opts Options) kvmnetv1.AgentClient {
	t.Helper()
	path := filepath.Join(t.TempDir(), "agent.sock")
	l, err := transport.ListenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	s := New(svc, opts)
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	cc, err := grpc.NewClient("unix:"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Stop(ctx)
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return kvmnetv1.NewAgentClient(cc)
}

// TestReportOnlyGate: with allow_apply false, Apply/Confirm/Rollback answer PERMISSION_DENIED naming
// the switch and the file, the service is never called, and the read-only RPCs keep working.
func TestReportOnlyGate(t *testing.T) {
	for _, allow := range []bool{false, true} {
		name := map[bool]string{false: "report-only", true: "apply allowed"}[allow]
		t.Run(name, func(t *testing.T) {
			svc := &fakeAgent{}
			c := start(t, svc, Options{AllowApply: allow})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			calls := map[string]func() error{
				"Apply":    func() error { _, err := c.Apply(ctx, &kvmnetv1.ApplyRequest{}); return err },
				"Confirm":  func() error { _, err := c.Confirm(ctx, &kvmnetv1.ConfirmRequest{CheckpointId: "cp1"}); return err },
				"Rollback": func() error { _, err := c.Rollback(ctx, &kvmnetv1.RollbackRequest{CheckpointId: "cp1"}); return err },
			}
			for m, call := range calls {
				err := call()
				if allow {
					if err != nil {
						t.Errorf("%s with allow_apply true: %v", m, err)
					}
					continue
				}
				st := status.Convert(err)
				if st.Code() != codes.PermissionDenied || !strings.Contains(st.Message(), "allow_apply") ||
					!strings.Contains(st.Message(), "/etc/kvmnet/agent.yaml") {
					t.Errorf("%s in report-only mode = %v, want PermissionDenied naming allow_apply in /etc/kvmnet/agent.yaml", m, err)
				}
			}
			if want := map[bool]int{false: 0, true: 1}[allow]; svc.applied != want {
				t.Errorf("service Apply called %d times, want %d", svc.applied, want)
			}
			if st, err := c.GetState(ctx, &kvmnetv1.GetStateRequest{}); err != nil || st.GetHostname() != "guest1" {
				t.Errorf("GetState = %v, %v", st, err)
			}
			if _, err := c.RunChecks(ctx, &kvmnetv1.RunChecksRequest{}); err != nil {
				t.Errorf("RunChecks: %v", err)
			}
			w, err := c.Watch(ctx, &kvmnetv1.WatchRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if ev, err := w.Recv(); err != nil || ev.GetSummary() != "enp1s0 up" {
				t.Errorf("Watch = %v, %v", ev, err)
			}
		})
	}
}

// TestDeadlineCap: a call without a deadline, or with a longer one, runs under MaxRPCTimeout.
func TestDeadlineCap(t *testing.T) {
	tests := []struct {
		name   string
		client time.Duration // 0: none
		max    time.Duration
	}{
		{"no client deadline", 0, 3 * time.Second},
		{"longer client deadline", time.Hour, 3 * time.Second},
		{"shorter client deadline kept", 2 * time.Second, time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			svc := &fakeAgent{}
			c := start(t, svc, Options{MaxRPCTimeout: tc.max})
			ctx := context.Background()
			if tc.client > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.client)
				defer cancel()
			}
			if _, err := c.GetState(ctx, &kvmnetv1.GetStateRequest{}); err != nil {
				t.Fatal(err)
			}
			want := min(tc.max, tc.client)
			if tc.client == 0 {
				want = tc.max
			}
			if svc.deadline <= 0 || svc.deadline > want {
				t.Fatalf("handler saw deadline in %v, want (0, %v]", svc.deadline, want)
			}
		})
	}
}

// TestLogging: each RPC is logged with method and code; failures at warn level.
func TestLogging(t *testing.T) {
	var logs syncBuf
	c := start(t, &fakeAgent{}, Options{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.GetState(ctx, &kvmnetv1.GetStateRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Apply(ctx, &kvmnetv1.ApplyRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Fatal(err)
	}
	for _, want := range []string{"level=DEBUG msg=rpc method=/kvmnet.v1.Agent/GetState code=OK",
		"level=WARN msg=rpc method=/kvmnet.v1.Agent/Apply code=PermissionDenied"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
}

// TestMaxMessageSize: a request over the limit is refused with RESOURCE_EXHAUSTED.
func TestMaxMessageSize(t *testing.T) {
	c := start(t, &fakeAgent{}, Options{AllowApply: true, MaxMessageSize: 1024})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	big := &kvmnetv1.ConfirmRequest{CheckpointId: strings.Repeat("x", 4096)}
	if _, err := c.Confirm(ctx, big); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("oversized request = %v, want ResourceExhausted", err)
	}
}

// TestStopDoesNotHang: Stop returns promptly with an idle client connection open.
func TestStopDoesNotHang(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.sock")
	l, err := transport.ListenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	s := New(&fakeAgent{}, Options{})
	go s.Serve(l)
	cc, err := grpc.NewClient("unix:"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := kvmnetv1.NewAgentClient(cc).GetState(ctx, &kvmnetv1.GetStateRequest{}); err != nil {
		t.Fatal(err)
	}
	stopCtx, stopCancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer stopCancel()
	done := make(chan struct{})
	go func() { s.Stop(stopCtx); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not return within 10s")
	}
}

// TestMaxHeaderListSize: the server announces its header limit, so a host's oversized metadata is
// refused before it is sent, and a normal call on the same connection still works.
func TestMaxHeaderListSize(t *testing.T) {
	c := start(t, &fakeAgent{}, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.GetState(ctx, &kvmnetv1.GetStateRequest{}); err != nil {
		t.Fatal(err)
	}
	big := metadata.AppendToOutgoingContext(ctx, "x-big", strings.Repeat("x", DefaultMaxHeaderListSize))
	_, err := c.GetState(big, &kvmnetv1.GetStateRequest{})
	if status.Code(err) != codes.Internal || !strings.Contains(err.Error(), "maximum size (65536 bytes) set by server") {
		t.Fatalf("oversized headers = %v, want refused at the server's 64 KiB", err)
	}
	if _, err := c.GetState(ctx, &kvmnetv1.GetStateRequest{}); err != nil {
		t.Fatalf("connection unusable after a refused call: %v", err)
	}
}
