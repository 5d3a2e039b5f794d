package apply

import (
	"context"
	"testing"
	"time"
)

// TestDetach: Apply's context survives the caller's cancellation (host disconnect) but keeps its
// deadline.
func TestDetach(t *testing.T) {
	for _, tc := range []struct {
		name     string
		deadline bool
	}{{"with deadline", true}, {"without deadline", false}} {
		t.Run(tc.name, func(t *testing.T) {
			parent, cancelParent := context.WithCancel(context.Background())
			var dl time.Time
			if tc.deadline {
				dl = time.Now().Add(time.Hour)
				parent, cancelParent = context.WithDeadline(context.Background(), dl)
			}
			ctx, cancel := detach(parent)
			defer cancel()
			cancelParent()
			if ctx.Err() != nil {
				t.Fatalf("detached context ended with its caller: %v", ctx.Err())
			}
			got, ok := ctx.Deadline()
			if ok != tc.deadline || !got.Equal(dl) {
				t.Fatalf("deadline = %v %v, want %v %v", got, ok, dl, tc.deadline)
			}
			cancel()
			if ctx.Err() == nil {
				t.Fatal("cancel did not end the detached context")
			}
		})
	}
	t.Run("deadline still applies", func(t *testing.T) {
		parent, cancelParent := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancelParent()
		ctx, cancel := detach(parent)
		defer cancel()
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("detached context outlived its deadline")
		}
	})
}
