package apply

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kvmnet/kvmnet/agent/config"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

type fakeUdev struct{ pending bool }

func (f *fakeUdev) Pending(string) bool { return f.pending }

// TestApplyWaitsForNewNIC: an Apply for a NIC NetworkManager does not manage yet because udev has
// not initialised it (a hot-plug seconds ago) waits for NetworkManager to take it over instead of
// refusing; still unmanaged after the wait it says "not yet managed"; a NIC udev has initialised
// and NetworkManager leaves unmanaged (configured so) is refused at once.
func TestApplyWaitsForNewNIC(t *testing.T) {
	req := &kvmnetv1.ApplyRequest{DryRun: true, Actions: []*kvmnetv1.Action{ensure(mac1, 0, 5)}}
	unmanage := func(e *env) {
		e.nm.mu.Lock()
		e.nm.state.Devices[0].Managed = false
		e.nm.mu.Unlock()
	}
	t.Run("taken over during the wait", func(t *testing.T) {
		e := newEnv(t, config.Default())
		unmanage(e)
		e.a.o.Udev = &fakeUdev{pending: true}
		time.AfterFunc(600*time.Millisecond, func() {
			e.nm.mu.Lock()
			e.nm.state.Devices[0].Managed = true
			e.nm.mu.Unlock()
		})
		start := time.Now()
		resp, err := e.a.Apply(context.Background(), req)
		if err != nil || len(resp.GetChanges()) == 0 {
			t.Fatalf("dry run after NetworkManager took the NIC over: %v %v", resp, err)
		}
		if w := time.Since(start); w < 500*time.Millisecond {
			t.Fatalf("answered after %s: did not wait for the device", w)
		}
	})
	t.Run("still not managed after the wait", func(t *testing.T) {
		e := newEnv(t, config.Default())
		unmanage(e)
		e.a.o.Udev = &fakeUdev{pending: true}
		e.a.o.ManagedWait = 400 * time.Millisecond
		_, err := e.a.Apply(context.Background(), req)
		if !errors.Is(err, ErrPrecondition) || !strings.Contains(err.Error(), "not yet managed") || !strings.Contains(err.Error(), "enp1s0") {
			t.Fatalf("err = %v, want not yet managed", err)
		}
	})
	t.Run("unmanaged on purpose: no wait", func(t *testing.T) {
		e := newEnv(t, config.Default())
		unmanage(e)
		e.a.o.Udev = &fakeUdev{pending: false}
		start := time.Now()
		_, err := e.a.Apply(context.Background(), req)
		if !errors.Is(err, ErrPrecondition) || !strings.Contains(err.Error(), "does not manage enp1s0") || time.Since(start) > 2*time.Second {
			t.Fatalf("err = %v after %s, want an immediate refusal", err, time.Since(start))
		}
	})
}

func TestUdevDB(t *testing.T) {
	root := t.TempDir()
	u := UdevDB{Root: root}
	mk := func(rel, content string) {
		t.Helper()
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mk("sys/class/net/enp6s0/ifindex", "6\n")
	if u.Pending("enp6s0") {
		t.Fatal("pending without udev running")
	}
	mk("run/udev/control", "")
	if !u.Pending("enp6s0") {
		t.Fatal("not pending: udev runs and has no n6 entry")
	}
	mk("run/udev/data/n6", "I:123\n")
	if u.Pending("enp6s0") || u.Pending("gone0") {
		t.Fatal("pending after udev initialised it (or for an interface that is gone)")
	}
}
