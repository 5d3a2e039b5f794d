package apply

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kvmnet/kvmnet/agent/config"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// blockedApply starts an Apply (a sysctl, then a profile whose lease wait blocks) and returns once
// it waits for the lease.
func blockedApply(t *testing.T, e *env) <-chan error {
	t.Helper()
	e.nm.block = make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := e.a.Apply(context.Background(), &kvmnetv1.ApplyRequest{Actions: []*kvmnetv1.Action{setIPv6(true), ensure(mac1, 0, 60)}})
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(e.nm.called(), "wait") {
		if time.Now().After(deadline) {
			t.Fatalf("the Apply never reached its lease wait: %s", e.nm.called())
		}
		time.Sleep(5 * time.Millisecond)
	}
	return done
}

// TestCloseUndoesRunningApply: SIGTERM (Close) while an Apply waits for a lease stops that Apply,
// rolls back the steps it made, and returns only then; later calls are refused.
func TestCloseUndoesRunningApply(t *testing.T) {
	e := newEnv(t, config.Default())
	done := blockedApply(t, e)
	if e.read(t, "proc/sys/net/ipv6/conf/all/disable_ipv6") != "1\n" {
		t.Fatal("the Apply's first step was not made")
	}
	closed := make(chan error, 1)
	go func() { closed <- e.a.Close() }()
	var applyErr error
	select {
	case applyErr = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not stop the running Apply")
	}
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return after the Apply ended")
	}
	if !errors.Is(applyErr, ErrRolledBack) || !strings.Contains(applyErr.Error(), "stopping") {
		t.Fatalf("Apply error = %v, want a rollback naming the stop", applyErr)
	}
	if e.read(t, "proc/sys/net/ipv6/conf/all/disable_ipv6") != "0\n" || e.read(t, "etc/sysctl.d/99-kvmnet-disable-ipv6.conf") != "<absent>" ||
		!strings.HasSuffix(e.nm.called(), ",rollback") || e.a.Pending() != nil {
		t.Fatalf("steps left after Close: calls %s", e.nm.called())
	}
	if _, err := e.a.Apply(context.Background(), &kvmnetv1.ApplyRequest{Actions: []*kvmnetv1.Action{setIPv6(true)}}); !errors.Is(err, ErrClosing) {
		t.Fatalf("Apply after Close = %v, want ErrClosing", err)
	}
}

// TestQueuedApplyGivesUpWithCaller: an Apply queued behind a running one returns when its caller's
// deadline passes, having changed nothing; a cancelled Confirm the same.
func TestQueuedApplyGivesUpWithCaller(t *testing.T) {
	e := newEnv(t, config.Default())
	done := blockedApply(t, e)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := e.a.Apply(ctx, &kvmnetv1.ApplyRequest{Actions: []*kvmnetv1.Action{forceIPv4(true)}})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("queued Apply = %v, want its deadline", err)
	}
	t.Logf("queued Apply gave up after %s", time.Since(start).Round(time.Millisecond))
	if e.read(t, "etc/apt/apt.conf.d/99kvmnet-force-ipv4") != "<absent>" {
		t.Fatal("the queued Apply changed something")
	}
	cctx, ccancel := context.WithCancel(context.Background())
	ccancel()
	if err := e.a.Confirm(cctx, "kvmnet-x"); !errors.Is(err, context.Canceled) {
		t.Fatalf("queued Confirm = %v, want its cancellation", err)
	}
	close(e.nm.block)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
