package apply

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	gonm "github.com/Wifx/gonetworkmanager/v2"
	"github.com/godbus/dbus/v5"
	"github.com/kvmnet/kvmnet/agent/config"
	"github.com/kvmnet/kvmnet/agent/nm"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// restartNM is fakeNM that can tell NetworkManager processes apart: instance is the current
// process's bus name, "" while none runs (then State fails too, as with the real one).
type restartNM struct {
	*fakeNM
	mu       sync.Mutex
	instance string
	// atCheckpoint, when set, becomes instance as CheckpointCreate returns: NetworkManager crashed
	// right after answering it ("-": and is not back).
	atCheckpoint string
}

func (r *restartNM) CheckpointCreate(ctx context.Context, devs []dbus.ObjectPath, d time.Duration, f gonm.NmCheckpointCreateFlags) (dbus.ObjectPath, error) {
	cp, err := r.fakeNM.CheckpointCreate(ctx, devs, d, f)
	r.mu.Lock()
	defer r.mu.Unlock()
	switch r.atCheckpoint {
	case "":
	case "-":
		r.instance = ""
	default:
		r.instance = r.atCheckpoint
	}
	return cp, err
}

func (r *restartNM) set(instance string) { r.mu.Lock(); r.instance = instance; r.mu.Unlock() }
func (r *restartNM) Instance(context.Context) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.instance == "" {
		return "", fmt.Errorf("NetworkManager GetNameOwner: %w", nm.ErrNotRunning)
	}
	return r.instance, nil
}
func (r *restartNM) State(ctx context.Context) (nm.State, error) {
	if _, err := r.Instance(ctx); err != nil {
		return nm.State{}, err
	}
	return r.fakeNM.State(ctx)
}
func (r *restartNM) Deactivate(_ context.Context, ac dbus.ObjectPath) error {
	r.log("deactivate:" + string(ac))
	return nil
}

func newRestartEnv(t *testing.T) (*env, *restartNM) {
	e := newEnv(t, config.Default())
	r := &restartNM{fakeNM: e.nm, instance: ":1.7"}
	e.a.setNM(r)
	e.a.o.NMRestartWait = 300 * time.Millisecond
	return e, r
}

var ensureReq = &kvmnetv1.ApplyRequest{RollbackTimeoutSeconds: 20, Actions: []*kvmnetv1.Action{ensure(mac1, 0, 5)}}

// TestNMRestartDuringApply: whichever way the lease wait ends, a NetworkManager process other than
// the one holding the checkpoint makes Apply restore from the agent's record (delete the profile it
// created) without ever asking the new process to roll back a checkpoint it does not have.
func TestNMRestartDuringApply(t *testing.T) {
	for _, tc := range []struct {
		name    string
		waitErr error
	}{
		{"wait fails", errors.New("Message recipient disconnected from message bus without replying")},
		{"wait succeeds against the new process", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, r := newRestartEnv(t)
			e.nm.block, e.nm.waitErr = make(chan struct{}), tc.waitErr
			done := make(chan error, 1)
			go func() { _, err := e.a.Apply(context.Background(), ensureReq); done <- err }()
			for !strings.Contains(e.nm.called(), "wait") {
				time.Sleep(5 * time.Millisecond)
			}
			r.set(":1.9")
			close(e.nm.block)
			err := <-done
			if !errors.Is(err, ErrRolledBack) || !strings.Contains(err.Error(), "NetworkManager restarted (bus name :1.7, now :1.9) during Apply") ||
				!strings.Contains(err.Error(), "profile kvm-dhcp-enp1s0 (created by the Apply) deleted") {
				t.Fatalf("err = %v", err)
			}
			if got := e.nm.called(); strings.Contains(got, "rollback") || !strings.HasSuffix(got, "delete:/c/kvm-dhcp-enp1s0") {
				t.Fatalf("calls %s", got)
			}
			if e.a.Pending() != nil {
				t.Fatal("pending after a restored Apply")
			}
		})
	}
}

// TestNMRestartAtCheckpointCreate: NetworkManager crashes right after answering CheckpointCreate,
// before the Applier's next call, and is restarted or stays away. The checkpoint's holder is the
// process noted before it, so the first NetworkManager step notices, and Apply restores from the
// record (or, NetworkManager away, keeps the checkpoint pending for Rollback) instead of completing
// with a checkpoint nobody holds.
func TestNMRestartAtCheckpointCreate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		after string // instance once CheckpointCreate returned ("-": none)
		want  error
		msg   string
	}{
		{"restarted", ":1.9", ErrRolledBack, "NetworkManager restarted (bus name :1.7, now :1.9) during Apply, at step 1"},
		{"not back", "-", ErrNMGone, "NetworkManager stopped during Apply, at step 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, r := newRestartEnv(t)
			r.atCheckpoint = tc.after
			_, err := e.a.Apply(context.Background(), ensureReq)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v", err)
			}
			if got := e.nm.called(); strings.Contains(got, "rollback") || strings.Contains(got, "wait") {
				t.Fatalf("calls %s", got)
			}
			if tc.want == ErrRolledBack {
				if !strings.Contains(err.Error(), "profile kvm-dhcp-enp1s0 (created by the Apply) deleted") || e.a.Pending() != nil {
					t.Fatalf("err = %v, pending %v", err, e.a.Pending())
				}
				return
			}
			if cp := e.a.Pending(); cp == nil || !strings.Contains(cp.Changes[0].Summary, "Apply did not complete") {
				t.Fatalf("pending %v", cp)
			}
		})
	}
}

// TestNMStoppedDuringApply: NetworkManager gone and not back within NMRestartWait → ErrNMGone
// telling the user to start it; the checkpoint stays pending and marked incomplete; Confirm is
// refused; Rollback while it is still away keeps the checkpoint; once it runs, Rollback restores.
func TestNMStoppedDuringApply(t *testing.T) {
	e, r := newRestartEnv(t)
	ctx := context.Background()
	e.nm.block, e.nm.waitErr = make(chan struct{}), fmt.Errorf("GetAll: %w", nm.ErrNotRunning)
	done := make(chan error, 1)
	go func() { _, err := e.a.Apply(ctx, ensureReq); done <- err }()
	for !strings.Contains(e.nm.called(), "wait") {
		time.Sleep(5 * time.Millisecond)
	}
	r.set("")
	close(e.nm.block)
	err := <-done
	if !errors.Is(err, ErrNMGone) || !strings.Contains(err.Error(), "NetworkManager stopped during Apply") ||
		!strings.Contains(err.Error(), "start it (`systemctl start NetworkManager`)") || strings.Count(err.Error(), "systemctl start") != 1 {
		t.Fatalf("err = %v", err)
	}
	cp := e.a.Pending()
	if cp == nil || cp.Changes[0].Kind != "checkpoint" || !strings.Contains(cp.Changes[0].Summary, "Apply did not complete") || !strings.Contains(err.Error(), "Rollback "+cp.Id) {
		t.Fatalf("pending %v", cp)
	}
	if err := e.a.Confirm(ctx, cp.Id); !errors.Is(err, ErrPrecondition) || !strings.Contains(err.Error(), "can only be rolled back") || e.a.Pending() == nil {
		t.Fatalf("confirm: %v", err)
	}
	if _, err := e.a.Rollback(ctx, cp.Id); !errors.Is(err, ErrNMGone) || e.a.Pending().GetId() != cp.Id {
		t.Fatalf("rollback without NetworkManager: %v (pending %v)", err, e.a.Pending())
	}
	r.set(":1.12")
	restored, err := e.a.Rollback(ctx, cp.Id)
	if err != nil || !strings.Contains(strings.Join(restored, ";"), "kvm-dhcp-enp1s0 (created by the Apply) deleted") || e.a.Pending() != nil {
		t.Fatalf("rollback: %q %v", restored, err)
	}
	if strings.Contains(e.nm.called(), "rollback") {
		t.Fatalf("checkpoint rollback asked of a new NetworkManager: %s", e.nm.called())
	}
}

// expireNow does what the timer does at the deadline.
func expireNow(e *env, id string) error {
	e.a.pending.timer.Stop()
	e.a.expire(id)
	return nil
}

// TestNMRestartWhilePending: after a successful Apply NetworkManager restarts. Confirm keeps the
// changes without destroying a checkpoint that no longer exists; the deadline restores from the
// record; with NetworkManager away at the deadline, the rollback is postponed, not dropped.
func TestNMRestartWhilePending(t *testing.T) {
	for _, tc := range []struct {
		name  string
		after string // instance after the Apply: "" = stopped
		act   func(e *env, id string) error
		check func(t *testing.T, e *env, calls string)
	}{
		{"confirm", ":1.9", func(e *env, id string) error { return e.a.Confirm(context.Background(), id) },
			func(t *testing.T, e *env, calls string) {
				if strings.Contains(calls, "destroy") || strings.Contains(calls, "delete") || e.a.Pending() != nil {
					t.Fatalf("calls %s, pending %v", calls, e.a.Pending())
				}
			}},
		{"deadline", ":1.9", expireNow,
			func(t *testing.T, e *env, calls string) {
				if strings.Contains(calls, "rollback") || !strings.HasSuffix(calls, "delete:/c/kvm-dhcp-enp1s0") || e.a.Pending() != nil {
					t.Fatalf("calls %s, pending %v", calls, e.a.Pending())
				}
			}},
		{"deadline while stopped", "", expireNow,
			func(t *testing.T, e *env, calls string) {
				cp := e.a.Pending()
				if strings.Contains(calls, "delete") || cp == nil || time.Until(cp.RollbackDeadline.AsTime()) < RestoreRetry-time.Second {
					t.Fatalf("calls %s, pending %v", calls, cp)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, r := newRestartEnv(t)
			resp, err := e.a.Apply(context.Background(), ensureReq)
			if err != nil {
				t.Fatal(err)
			}
			r.set(tc.after)
			if err := tc.act(e, resp.CheckpointId); err != nil {
				t.Fatal(err)
			}
			tc.check(t, e, e.nm.called())
		})
	}
}
