package hoststeps

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/kvmnet/kvmnet/controller/fixplan"
	"github.com/kvmnet/kvmnet/controller/runner"
)

// TestEveryKindHasAnEntry: a step kind fixplan can plan but the table lacks would reach the user as
// "not supported" only at run time.
func TestEveryKindHasAnEntry(t *testing.T) {
	table := Table(Env{})
	for _, k := range fixplan.HostStepKinds() {
		if table[k] == nil {
			t.Errorf("no entry for step kind %s", k)
		}
	}
	if len(table) != len(fixplan.HostStepKinds()) {
		t.Errorf("table has %d entries for %d kinds", len(table), len(fixplan.HostStepKinds()))
	}
}

// recorder is a runner that records the argument vectors it is given.
type recorder struct{ argv [][]string }

func (r *recorder) Run(_ context.Context, name string, args ...string) ([]byte, error) {
	r.argv = append(r.argv, append([]string{name}, args...))
	return nil, nil
}

// TestShownIsRun: the commands a step shows and what its action runs come from one computation.
func TestShownIsRun(t *testing.T) {
	rec := &recorder{}
	var out bytes.Buffer
	s := &steps{Env: Env{Run: rec, Out: &out}}
	ch, err := s.firewallStep(context.Background(), fixplan.HostStep{Kind: fixplan.StepUFWRouteAllow, Bridge: "virbr0", Uplink: "eth0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Do(context.Background()); err != nil {
		t.Fatal(err)
	}
	var ran []string
	for _, a := range rec.argv {
		ran = append(ran, runner.Quote(a))
	}
	for _, shown := range ch.Commands {
		if strings.HasPrefix(shown, "#") {
			continue
		}
		cmd, _, _ := strings.Cut(shown, "   # ")
		found := false
		for _, r := range ran {
			found = found || strings.Contains(r, cmd) || strings.Contains(cmd, r)
		}
		if !found {
			t.Errorf("shown %q, not run; ran %v", cmd, ran)
		}
	}
	if len(ran) == 0 {
		t.Fatal("the action ran nothing")
	}
}
