package nm

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// TestParallel: every index runs once, errors come back by index (so callers decide in sequential
// order), and never more than maxInFlight run at once.
func TestParallel(t *testing.T) {
	for _, n := range []int{0, 1, 3, maxInFlight, 3*maxInFlight + 1} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			var inFlight, peak atomic.Int32
			ran := make([]atomic.Int32, n)
			errs := parallel(n, func(i int) error {
				cur := inFlight.Add(1)
				for p := peak.Load(); cur > p && !peak.CompareAndSwap(p, cur); p = peak.Load() {
				}
				time.Sleep(time.Millisecond)
				inFlight.Add(-1)
				ran[i].Add(1)
				if i%3 == 1 {
					return fmt.Errorf("call %d failed", i)
				}
				return nil
			})
			if len(errs) != n {
				t.Fatalf("%d errors for %d calls", len(errs), n)
			}
			for i := range n {
				if got := ran[i].Load(); got != 1 {
					t.Errorf("index %d ran %d times", i, got)
				}
				want := i%3 == 1
				if (errs[i] != nil) != want || (want && errs[i].Error() != fmt.Sprintf("call %d failed", i)) {
					t.Errorf("errs[%d] = %v", i, errs[i])
				}
			}
			if p := peak.Load(); p > maxInFlight {
				t.Errorf("%d calls in flight at once, bound is %d", p, maxInFlight)
			}
			if errors.Join(errs...) == nil && n > 1 {
				t.Error("no error reported")
			}
		})
	}
}
