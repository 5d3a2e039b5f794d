package collect

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvmnet/kvmnet/controller/snapshot"
)

// countingDialer records the highest number of dials in flight at once.
type countingDialer struct {
	inner        DialFunc
	now, maxSeen atomic.Int32
}

func (d *countingDialer) DialAgent(ctx context.Context, addr snapshot.AgentAddr) (Agent, error) {
	n := d.now.Add(1)
	defer d.now.Add(-1)
	for {
		m := d.maxSeen.Load()
		if n <= m || d.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	// Stay in flight for a moment so overlapping workers are seen together.
	time.Sleep(20 * time.Millisecond)
	return d.inner(ctx, addr)
}

// With Workers set, no more guests are dialled at once than the bound, a hung guest is TimedOut
// after its own Timeout, and guests whose turn never comes before the caller's deadline are
// reported TimedOut (not dialled) instead of failing the collection.
func TestWorkersBoundAndTimedOut(t *testing.T) {
	lv := fleet(t, 12, 3)
	d := &countingDialer{inner: unixDialer()}
	c, err := New(Sources{Libvirt: lv, Agents: d}, Options{Timeout: 2 * time.Second, Workers: 3})
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := d.maxSeen.Load(); got > 3 || got < 2 {
		t.Errorf("dials in flight at once = %d, want 2..3 (Workers 3)", got)
	}
	for i, g := range s.Guests {
		if want := i == 3; g.TimedOut != want || g.Reachable == want {
			t.Errorf("guest %s: timed_out=%v reachable=%v error=%q, want timed_out=%v", g.Domain, g.TimedOut, g.Reachable, g.Error, want)
		}
	}

	// A caller deadline shorter than a hung guest's Timeout with one worker: the collection ends at
	// the caller's deadline however many guests wait behind the hung one.
	lv = fleet(t, 4, 0, 1, 2)
	c, err = New(Sources{Libvirt: lv, Agents: unixDialer()}, Options{Timeout: 5 * time.Second, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	start := time.Now()
	s, err = c.Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("collect with a 1.5 s caller deadline took %s", time.Since(start))
	// Whichever hung guest gets the only worker first holds it until the deadline; the others are
	// then either still queued (not dialled) or squeezed in as the slot freed: timed out either way.
	for i, g := range s.Guests {
		if i < 3 && (!g.TimedOut || g.Reachable) {
			t.Errorf("hung guest %s: timed_out=%v reachable=%v error=%q, want timed out", g.Domain, g.TimedOut, g.Reachable, g.Error)
		}
	}
	// A guest whose turn never came: timed out, not dialled, and it says so.
	q := c.queuedOut(lv.doms[1], context.DeadlineExceeded)
	if !q.TimedOut || q.Reachable || !strings.Contains(q.Error, "not queried before the deadline") || q.Address == "" {
		t.Errorf("queued-out guest = %+v", q)
	}
	if el := time.Since(start); el > 4*time.Second {
		t.Errorf("collect took %s, want about the caller's 1.5 s deadline", el)
	}
}
