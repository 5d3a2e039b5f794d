package server

import (
	"context"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kvmnet/kvmnet/agent/transport"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// wedgedAgent's GetState ignores its context until release is closed.
type wedgedAgent struct {
	fakeAgent
	entered chan struct{}
	release chan struct{}
}

func (w *wedgedAgent) GetState(context.Context, *kvmnetv1.GetStateRequest) (*kvmnetv1.GuestState, error) {
	close(w.entered)
	<-w.release
	return &kvmnetv1.GuestState{}, nil
}

// serveUnix serves s on a fresh unix socket and returns a client connection to it.
func serveUnix(t *testing.T, s *Server) *grpc.ClientConn {
	t.Helper()
	path := filepath.Join(t.TempDir(), "a.sock")
	l, err := transport.ListenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(l) }()
	cc, err := grpc.NewClient("unix:"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// TestStopWithWedgedHandler: a handler that ignores its context (an NM call without deadline, say)
// must not keep Stop — and so the agent's shutdown — waiting past Stop's context.
func TestStopWithWedgedHandler(t *testing.T) {
	w := &wedgedAgent{entered: make(chan struct{}), release: make(chan struct{})}
	defer close(w.release)
	s := New(w, Options{})
	cc := serveUnix(t, s)
	go func() { _, _ = kvmnetv1.NewAgentClient(cc).GetState(context.Background(), &kvmnetv1.GetStateRequest{}) }()
	select {
	case <-w.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("GetState never reached the handler")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	done := make(chan struct{})
	go func() { s.Stop(ctx); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop still waiting for a wedged handler 10s after its 200ms context ended")
	}
}

// TestIdleRelease: memory is handed back once after a burst of RPCs goes idle, never while an RPC
// runs, and nothing fires again while the server stays idle (no periodic wakeup).
func TestIdleRelease(t *testing.T) {
	var released atomic.Int64
	s := New(&fakeAgent{}, Options{IdleRelease: 100 * time.Millisecond, ReleaseMemory: func() { released.Add(1) }})
	c := kvmnetv1.NewAgentClient(serveUnix(t, s))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				if _, err := c.GetState(ctx, &kvmnetv1.GetStateRequest{}, grpc.WaitForReady(true)); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if err := waitUntil(5*time.Second, func() bool { return released.Load() >= 1 }); err != nil {
		t.Fatalf("memory never released after the burst went idle")
	}
	// On a loaded machine a gap of more than one idle period inside the burst is a legitimate
	// release of its own; what must not happen is a release while nothing runs.
	time.Sleep(300 * time.Millisecond)
	settled := released.Load()
	time.Sleep(500 * time.Millisecond) // five idle periods
	if n := released.Load(); n != settled {
		t.Errorf("released %d more times while idle after the burst, want 0 (one-shot, not periodic)", n-settled)
	}
	t.Logf("releases during and after a 200-RPC burst: %d", settled)
	t.Run("disabled", func(t *testing.T) {
		var n atomic.Int64
		s := New(&fakeAgent{}, Options{IdleRelease: -1, ReleaseMemory: func() { n.Add(1) }})
		c := kvmnetv1.NewAgentClient(serveUnix(t, s))
		if _, err := c.GetState(ctx, &kvmnetv1.GetStateRequest{}, grpc.WaitForReady(true)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		if n.Load() != 0 {
			t.Errorf("IdleRelease -1 still released memory")
		}
	})
}

func waitUntil(d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return context.DeadlineExceeded
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// heapInUse is the live heap after a full GC.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// burst runs n GetState calls at once, each on its own stream, and fails the test unless all are
// answered.
func burst(t *testing.T, ctx context.Context, c kvmnetv1.AgentClient, n int) {
	t.Helper()
	var wg sync.WaitGroup
	var failed atomic.Int64
	start := make(chan struct{})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			st, err := c.GetState(ctx, &kvmnetv1.GetStateRequest{})
			if err != nil || st.GetHostname() != "guest1" {
				failed.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	if f := failed.Load(); f > 0 {
		t.Fatalf("%d of %d concurrent GetState calls failed", f, n)
	}
}

// TestThousandConcurrentGetState: bursts of 1,000 concurrent GetState calls against one server
// are all answered, and afterwards goroutines return to their count before the burst and the live
// heap to its level after the first burst. The first burst leaves a one-time high-water mark
// (about 1 MiB: the HTTP/2 transports' stream maps on both ends of the connection, which Go maps
// never shrink, plus gRPC's buffer pools); later bursts must not add to it, or every call would
// leak.
func TestThousandConcurrentGetState(t *testing.T) {
	s := New(&fakeAgent{}, Options{})
	c := kvmnetv1.NewAgentClient(serveUnix(t, s))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := c.GetState(ctx, &kvmnetv1.GetStateRequest{}, grpc.WaitForReady(true)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	g0, h0 := runtime.NumGoroutine(), heapInUse()
	settle := func(hBase uint64) (int, uint64, error) {
		var g int
		var h uint64
		err := waitUntil(10*time.Second, func() bool { // stream goroutines exit asynchronously
			g, h = runtime.NumGoroutine(), heapInUse()
			return g <= g0+2 && h <= hBase+512<<10
		})
		return g, h, err
	}
	burst(t, ctx, c, 1000)
	g1, h1, _ := settle(h0)
	t.Logf("first burst: goroutines %d -> %d, heap in use %d KiB -> %d KiB (high-water mark)", g0, g1, h0>>10, h1>>10)
	if g1 > g0+2 {
		t.Errorf("goroutines %d -> %d after 1000 concurrent calls", g0, g1)
	}
	for round := 2; round <= 3; round++ {
		burst(t, ctx, c, 1000)
		g, h, err := settle(h1)
		t.Logf("burst %d: goroutines %d, heap in use %d KiB", round, g, h>>10)
		if err != nil {
			t.Errorf("burst %d did not return to baseline: goroutines %d (before %d), heap %d KiB (after first burst %d KiB)", round, g, g0, h>>10, h1>>10)
		}
	}
}
