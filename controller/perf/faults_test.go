package perf

import (
	"context"
	"crypto/rand"
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

	"github.com/kvmnet/kvmnet/agent/apply"
	"github.com/kvmnet/kvmnet/agent/config"
	"github.com/kvmnet/kvmnet/agent/server"
	"github.com/kvmnet/kvmnet/agent/service"
	"github.com/kvmnet/kvmnet/agent/transport"
	"github.com/kvmnet/kvmnet/controller/agentclient"
	"github.com/kvmnet/kvmnet/controller/collect"
	"github.com/kvmnet/kvmnet/controller/snapshot"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
	"github.com/kvmnet/kvmnet/proto/kvmnet/v1/resync"
	"github.com/kvmnet/kvmnet/scripts/lab/testenv/serialemu"
)

// gatedSysctl is an in-memory sysctl store whose Set waits for release once armed, telling entered
// when the first Set starts: the Apply it belongs to is then in the middle of its steps.
type gatedSysctl struct {
	mu      sync.Mutex
	m       map[string]string
	armed   bool
	entered chan struct{}
	release chan struct{}
}

func newGatedSysctl(armed bool) *gatedSysctl {
	return &gatedSysctl{m: map[string]string{}, armed: armed, entered: make(chan struct{}), release: make(chan struct{})}
}

func (g *gatedSysctl) Get(k string) (string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if v, ok := g.m[k]; ok {
		return v, nil
	}
	return "0", nil
}

func (g *gatedSysctl) Set(k, v string) error {
	g.mu.Lock()
	armed := g.armed
	g.armed = false
	g.mu.Unlock()
	if armed {
		close(g.entered)
		<-g.release
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.m[k] = v
	return nil
}

func (g *gatedSysctl) value(k string) string { v, _ := g.Get(k); return v }

// applyAgent serves the real service (fake NM and sensors, real file store under a temp root,
// sysctls in memory) on a unix socket and returns its address, the root and the sysctl store.
func applyAgent(t *testing.T, sys *gatedSysctl) (string, string) {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	if err := os.MkdirAll(filepath.Join(root, "etc/sysctl.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Root = root
	mac := "52:54:00:00:00:01"
	svc, err := service.New(service.Options{Version: "faults", Config: cfg, NM: fakeNM{mac}, Links: fakeLinks{mac}, Stack: fakeStack{},
		IPv6: fakeIPv6{}, PkgConf: fakePkg{}, DNS: fakeDNS{}, QGA: fakeQGA{}, OS: fakeOS{"guest"}, Checks: okChecks{}, Sysctl: sys})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	path := filepath.Join(dir, "agent.sock")
	l, err := transport.ListenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	serve(t, svc, l)
	return "unix:" + path, root
}

func rawClient(t *testing.T, addr string) (*grpc.ClientConn, kvmnetv1.AgentClient) {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc, kvmnetv1.NewAgentClient(cc)
}

var disableIPv6 = &kvmnetv1.ApplyRequest{RollbackTimeoutSeconds: 10, Actions: []*kvmnetv1.Action{
	{Action: &kvmnetv1.Action_SetIpv6{SetIpv6: &kvmnetv1.SetIPv6{Disable: true}}}}}

// pendingAfter polls GetState until a checkpoint is pending (or d passes).
func pendingAfter(t *testing.T, c kvmnetv1.AgentClient, d time.Duration) *kvmnetv1.Checkpoint {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := c.GetState(ctx, &kvmnetv1.GetStateRequest{}, grpc.WaitForReady(true))
		cancel()
		if err == nil && st.GetPendingCheckpoint() != nil {
			return st.GetPendingCheckpoint()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// TestApplyHostDisconnect: the host's connection drops while Apply is in the middle of its steps.
// Defined behaviour (agent/service doc): the agent finishes the Apply — a disconnect does not cancel
// it — and the checkpoint stays pending; after reconnecting, the controller finds it in GetState's
// pending_checkpoint and can Confirm it until its deadline (otherwise it rolls back by itself:
// TestControllerGoneRollsBack).
func TestApplyHostDisconnect(t *testing.T) {
	sys := newGatedSysctl(true)
	addr, root := applyAgent(t, sys)
	cc, c := rawClient(t, addr)
	applied := make(chan error, 1)
	go func() {
		_, err := c.Apply(context.Background(), disableIPv6, grpc.WaitForReady(true))
		applied <- err
	}()
	select {
	case <-sys.entered:
	case <-time.After(20 * time.Second):
		t.Fatal("Apply never reached its sysctl step")
	}
	_ = cc.Close() // the host goes away mid-Apply
	if err := <-applied; status.Code(err) != codes.Canceled {
		t.Fatalf("Apply on the closed connection = %v, want Canceled", err)
	}
	time.Sleep(200 * time.Millisecond) // let the server see the connection end
	close(sys.release)

	_, c2 := rawClient(t, addr) // the host reconnects
	cp := pendingAfter(t, c2, 20*time.Second)
	if cp == nil {
		t.Fatal("no pending checkpoint after reconnect: the interrupted Apply was lost")
	}
	if len(cp.GetChanges()) == 0 || time.Until(cp.GetRollbackDeadline().AsTime()) <= 0 {
		t.Fatalf("pending checkpoint %v: want changes and a future deadline", cp)
	}
	if _, err := os.Stat(filepath.Join(root, apply.SysctlFile)); err != nil {
		t.Fatalf("the Apply's file is missing: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c2.Confirm(ctx, &kvmnetv1.ConfirmRequest{CheckpointId: cp.GetId()}); err != nil {
		t.Fatalf("Confirm after reconnect: %v", err)
	}
	st, err := c2.GetState(ctx, &kvmnetv1.GetStateRequest{})
	if err != nil || st.GetPendingCheckpoint() != nil {
		t.Fatalf("after Confirm: pending %v, err %v", st.GetPendingCheckpoint(), err)
	}
	if v := sys.value("net.ipv6.conf.all.disable_ipv6"); v != "1" {
		t.Errorf("confirmed change lost: disable_ipv6 = %q", v)
	}
}

// TestControllerGoneRollsBack: the controller applies and dies before Confirm (its connection
// closes). The guest rolls back by itself when the rollback timeout (10 s, the minimum) passes:
// sysctls back to their old values, kvmnet's file removed, and a new client's Watch sees the
// event.
func TestControllerGoneRollsBack(t *testing.T) {
	sys := newGatedSysctl(false)
	addr, root := applyAgent(t, sys)
	cc, c := rawClient(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	resp, err := c.Apply(ctx, disableIPv6, grpc.WaitForReady(true))
	if err != nil {
		t.Fatal(err)
	}
	deadline := resp.GetRollbackDeadline().AsTime()
	if v := sys.value("net.ipv6.conf.all.disable_ipv6"); v != "1" {
		t.Fatalf("Apply did not set disable_ipv6: %q", v)
	}
	_ = cc.Close() // the controller is killed

	_, watcher := rawClient(t, addr)
	w, err := watcher.Watch(ctx, &kvmnetv1.WatchRequest{}, grpc.WaitForReady(true))
	if err != nil {
		t.Fatal(err)
	}
	for {
		ev, err := w.Recv()
		if err != nil {
			t.Fatalf("Watch ended before the rollback event: %v", err)
		}
		if strings.Contains(ev.GetSummary(), resp.GetCheckpointId()) && strings.Contains(ev.GetSummary(), "rolled back") {
			t.Logf("%s: %s (deadline was %s)", ev.GetTime().AsTime().Format(time.StampMilli), ev.GetSummary(), deadline.Format(time.StampMilli))
			if ev.GetTime().AsTime().Before(deadline) {
				t.Errorf("rolled back before its deadline")
			}
			break
		}
	}
	if v := sys.value("net.ipv6.conf.all.disable_ipv6"); v != "0" {
		t.Errorf("after rollback disable_ipv6 = %q, want 0", v)
	}
	if _, err := os.Stat(filepath.Join(root, apply.SysctlFile)); !os.IsNotExist(err) {
		t.Errorf("kvmnet's %s still there after rollback: %v", apply.SysctlFile, err)
	}
	st, err := watcher.GetState(ctx, &kvmnetv1.GetStateRequest{})
	if err != nil || st.GetPendingCheckpoint() != nil {
		t.Errorf("after rollback: pending %v, err %v", st.GetPendingCheckpoint(), err)
	}
}

// TestAgentRestartDuringCall: the controller waits on a GetState the agent never answers; the
// agent is killed and restarted by its supervisor behind the same virtio-serial channel. The
// waiting call fails at once with a transport error (not at its 60 s deadline), and the next call
// is served by the new agent.
func TestAgentRestartDuringCall(t *testing.T) {
	e, err := serialemu.New(filepath.Join(t.TempDir(), "ch.sock"), serialemu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	root := t.TempDir()
	release := make(chan struct{})
	defer close(release)
	wedged := hungAgent{AgentServer: newService(t, root, "incarnation-1", "52:54:00:00:00:01", nil), release: release}
	s1 := server.New(wedged, server.Options{})
	l1 := transport.NewSerialListener(e, transport.SerialOptions{})
	go func() { _ = s1.Serve(l1) }()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	c, err := agentclient.Dial(ctx, "serial:"+e.HostPath(), agentclient.WithResend(100*time.Millisecond))
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	type result struct {
		err error
		at  time.Duration
	}
	waiting := make(chan result, 1)
	start := time.Now()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		_, err := c.GetState(ctx, &kvmnetv1.GetStateRequest{})
		waiting <- result{err, time.Since(start)}
	}()
	time.Sleep(300 * time.Millisecond) // the call is in the agent now

	// kill -9: the port closes, nothing more reaches the host; the host keeps its connection.
	stopCtx, stopCancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	_ = l1.Close()
	s1.Stop(stopCtx)
	stopCancel()
	e.DropGuest()
	killedAt := time.Since(start)
	// systemd restarts it.
	serve(t, newService(t, root, "incarnation-2", "52:54:00:00:00:01", nil), transport.NewSerialListener(e, transport.SerialOptions{}))

	var r result
	select {
	case r = <-waiting:
	case <-time.After(60 * time.Second):
		t.Fatal("the waiting call hung past its own deadline")
	}
	t.Logf("waiting call ended %s after the kill: %v", r.at-killedAt, r.err)
	if r.err == nil || status.Code(r.err) == codes.DeadlineExceeded {
		t.Fatalf("waiting call = %v, want a transport error before its deadline", r.err)
	}
	var st *kvmnetv1.GuestState
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		st, err = c.GetState(ctx, &kvmnetv1.GetStateRequest{})
		cancel()
		if err == nil {
			break
		}
	}
	if err != nil || st.GetHostname() != "incarnation-2" {
		t.Fatalf("after restart GetState = %v, %v; want the new agent", st, err)
	}
}

// staticLibvirt is a collect.LibvirtSource over fixed domains.
type staticLibvirt struct{ doms []snapshot.Domain }

func (staticLibvirt) URI() string   { return "test:///faults" }
func (staticLibvirt) Session() bool { return false }
func (staticLibvirt) Remote() bool  { return true }
func (staticLibvirt) Networks(context.Context) ([]snapshot.Network, error) {
	return []snapshot.Network{}, nil
}
func (s staticLibvirt) Domains(context.Context) ([]snapshot.Domain, error) {
	return append([]snapshot.Domain(nil), s.doms...), nil
}

// garbageChannel is a channel socket whose "guest" floods every host connection with random bytes
// (it never completes the handshake) until the test ends. It returns the socket path.
func garbageChannel(t *testing.T, dir string) string {
	path := filepath.Join(dir, "garbage.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { close(done); _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 64<<10)
				for {
					select {
					case <-done:
						return
					default:
					}
					_, _ = rand.Read(buf)
					if _, err := c.Write(buf); err != nil {
						return
					}
				}
			}()
		}
	}()
	return path
}

// TestGarbageFloodingGuest: one guest floods its channel with random bytes as fast as it can; the
// collection still answers for the 20 healthy guests and reports the flooding one unreachable,
// naming the flood (resync.ErrGarbage: the host gives up after resync.MaxStale bytes instead of
// waiting for the timeout).
func TestGarbageFloodingGuest(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	lv := staticLibvirt{}
	dom := func(name, sock string) snapshot.Domain {
		return snapshot.Domain{Name: name, State: "running",
			Channels: []snapshot.Channel{{Name: snapshot.ChannelKvmnet, Type: "unix", Path: sock, State: "connected"}}}
	}
	lv.doms = append(lv.doms, dom("flood", garbageChannel(t, dir)))
	for i := range 20 {
		name := "ok" + string(rune('a'+i))
		lv.doms = append(lv.doms, dom(name, serialGuest(t, dir, name, newService(t, root, name, "52:54:00:00:00:01", nil))))
	}
	const timeout = 5 * time.Second
	c, err := collect.New(collect.Sources{Libvirt: lv, Agents: collect.DialFunc(func(ctx context.Context, addr snapshot.AgentAddr) (collect.Agent, error) {
		a, err := agentclient.DialAddr(ctx, addr, agentclient.WithDialTimeout(timeout))
		if err != nil {
			return nil, err
		}
		return a, nil
	})}, collect.Options{Timeout: timeout, Checks: true})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	s, err := c.Collect(context.Background())
	el := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("collect with a flooding guest took %s (timeout %s)", el, timeout)
	for _, g := range s.Guests {
		if g.Domain == "flood" {
			if g.Reachable || !strings.Contains(g.Error, resync.ErrGarbage.Error()) {
				t.Errorf("flooding guest: reachable=%v error=%q", g.Reachable, g.Error)
			}
			t.Logf("flooding guest reported: %s", g.Error)
			continue
		}
		if !g.Reachable || g.State.GetHostname() != g.Domain || len(g.Checks) == 0 {
			t.Errorf("%s: reachable=%v error=%q", g.Domain, g.Reachable, g.Error)
		}
	}
	if el > timeout+timeout/2 {
		t.Errorf("collect took %s: the flooding guest held it past its %s timeout", el, timeout)
	}
}
