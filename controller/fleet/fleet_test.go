package fleet

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvmnet/kvmnet/controller/diagnose"
)

// A failing host and a hung one are rows; the others answer; the hung one costs only its deadline.
func TestStatusRows(t *testing.T) {
	var inFlight, maxSeen atomic.Int32
	q := func(ctx context.Context, host string) (diagnose.Report, int, error) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := maxSeen.Load(); n > m && !maxSeen.CompareAndSwap(m, n); m = maxSeen.Load() {
		}
		switch host {
		case "down":
			return diagnose.Report{}, 0, errors.New("ssh failed: connection refused")
		case "hung":
			<-make(chan struct{}) // ignores ctx: Status must not wait for it
		case "bad":
			return diagnose.Report{Guests: []diagnose.GuestReport{{Name: "a", Healthy: false,
				Findings: []diagnose.Finding{{Code: diagnose.CodeGuestNoIPv4, Severity: diagnose.SeverityError}, {Code: diagnose.CodeGuestNoIPv4, Severity: diagnose.SeverityError}}}},
				Host: diagnose.HostReport{Findings: []diagnose.Finding{{Code: diagnose.CodeIPForwardOff, Severity: diagnose.SeverityError}}}}, 1, nil
		}
		time.Sleep(10 * time.Millisecond)
		return diagnose.Report{Guests: []diagnose.GuestReport{{Name: "x", Healthy: true}}}, 0, nil
	}
	start := time.Now()
	r := Status(context.Background(), []string{"ok1", "down", "hung", "bad", "ok2"}, 300*time.Millisecond, 3, q)
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("Status took %s with a 300ms per-host deadline", el)
	}
	if maxSeen.Load() > 3 {
		t.Errorf("%d queries at once, workers 3", maxSeen.Load())
	}
	want := []struct {
		reach  bool
		status string
		codes  string
	}{{true, "ok", "-"}, {false, "unreachable", "ssh failed: connection refused"}, {false, "unreachable", "no answer within 300ms"},
		{true, "errors", "guest_no_ipv4,ip_forward_off"}, {true, "ok", "-"}}
	rows := r.Rows()
	for i, w := range want {
		if r.Hosts[i].Reachable != w.reach || rows[i][1] != w.status || rows[i][4] != w.codes {
			t.Errorf("row %d = %v (reachable %v), want %s %s", i, rows[i], r.Hosts[i].Reachable, w.status, w.codes)
		}
	}
	if r.Healthy() || !strings.Contains(r.Summary(), "5 hosts: 2 unreachable, 1 with error-level findings") {
		t.Errorf("summary %q healthy=%v", r.Summary(), r.Healthy())
	}
}
