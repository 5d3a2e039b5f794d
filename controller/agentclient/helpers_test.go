package agentclient

import (
	"context"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/kvmnet/kvmnet/agent/server"
	"github.com/kvmnet/kvmnet/agent/transport"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
	"github.com/kvmnet/kvmnet/scripts/lab/testenv/serialemu"
)

// fakeAgent is a small AgentServer: GetState names the instance, Hang blocks GetState until the
// call's context ends (a hung agent).
type fakeAgent struct {
	kvmnetv1.UnimplementedAgentServer
	name  string
	hang  atomic.Bool
	calls atomic.Int64
}

func (f *fakeAgent) GetState(ctx context.Context, _ *kvmnetv1.GetStateRequest) (*kvmnetv1.GuestState, error) {
	f.calls.Add(1)
	if f.hang.Load() {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return &kvmnetv1.GuestState{Hostname: f.name, AgentVersion: "test",
		Interfaces: []*kvmnetv1.Interface{{Name: "enp1s0", Mac: "52:54:00:12:34:56"}}}, nil
}

func (f *fakeAgent) Watch(_ *kvmnetv1.WatchRequest, s grpc.ServerStreamingServer[kvmnetv1.Event]) error {
	for i := 0; i < 3; i++ {
		if err := s.Send(&kvmnetv1.Event{Summary: "event"}); err != nil {
			return err
		}
	}
	return nil
}

// agentOn serves a new fake agent on l; the returned stop func is idempotent.
func agentOn(t testing.TB, l net.Listener, name string, opts server.Options) (*fakeAgent, func()) {
	t.Helper()
	svc := &fakeAgent{name: name}
	s := server.New(svc, opts)
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			s.Stop(ctx)
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return svc, stop
}

// unixAgent starts a fake agent on a fresh unix socket and returns its address.
func unixAgent(t testing.TB, name string) (string, *fakeAgent) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "agent.sock")
	l, err := transport.ListenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	svc, _ := agentOn(t, l, name, server.Options{})
	return "unix:" + path, svc
}

func newEmu(t testing.TB) *serialemu.Emulator {
	t.Helper()
	e, err := serialemu.New(filepath.Join(t.TempDir(), "channel.sock"), serialemu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// serialAgent serves a fake agent on the guest end of e.
func serialAgent(t testing.TB, e *serialemu.Emulator, name string, opts server.Options) (*fakeAgent, *transport.SerialListener, func()) {
	t.Helper()
	l := transport.NewSerialListener(e, transport.SerialOptions{})
	svc, stop := agentOn(t, l, name, opts)
	return svc, l, stop
}

func dial(t testing.TB, addr string, opts ...Option) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, addr, opts...)
	if err != nil {
		t.Fatalf("Dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func getState(t testing.TB, c *Client) *kvmnetv1.GuestState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := c.GetState(ctx, &kvmnetv1.GetStateRequest{})
	if err != nil {
		t.Fatalf("GetState: %v", err)
	}
	return st
}
