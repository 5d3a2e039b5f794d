package fix

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kvmnet/kvmnet/controller/fixplan"
	"github.com/kvmnet/kvmnet/controller/snapshot"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// slowChecksAgent fails its checks with a clear reason on the first round, then blocks each later
// RunChecks until the caller's deadline (a guest whose checks take as long as the budget left).
type slowChecksAgent struct {
	fakeAgent
	rounds atomic.Int32
}

func (a *slowChecksAgent) RunChecks(ctx context.Context, r *kvmnetv1.RunChecksRequest, o ...grpc.CallOption) (*kvmnetv1.RunChecksResponse, error) {
	if a.rounds.Add(1) == 1 {
		return a.fakeAgent.RunChecks(ctx, r, o...)
	}
	<-ctx.Done()
	return nil, status.FromContextError(ctx.Err()).Err()
}

// TestVerifyReportsLastCompleteRound: when the budget runs out in the middle of a round, the
// reported failures are the previous complete round's (which name the failed checks), not
// "run checks: context deadline exceeded".
func TestVerifyReportsLastCompleteRound(t *testing.T) {
	a := &slowChecksAgent{}
	var out bytes.Buffer
	lease := []snapshot.Lease{{MAC: mac, IP: "192.168.122.50", Family: 4}}
	d := guestDeps(&a.fakeAgent, func() []snapshot.Lease { return lease }, &out)
	d.DialAgent = func(context.Context, snapshot.Guest) (Agent, error) { return a, nil }
	res, err := Guest(context.Background(), d, fixplan.GuestOptions{Domain: "vm1", RollbackTimeout: 10 * time.Second}, false)
	if !errors.Is(err, ErrVerificationFailed) || !res.RolledBack {
		t.Fatalf("err = %v, rolled back %v", err, res.RolledBack)
	}
	if a.rounds.Load() < 2 {
		t.Fatalf("only %d round(s): the case needs a round cut short by the budget", a.rounds.Load())
	}
	if !strings.Contains(err.Error(), "check gateway-v4 (PING default gateway) failed: timeout") || strings.Contains(err.Error(), "deadline exceeded") {
		t.Fatalf("failures do not name the failed checks: %v", err)
	}
}

// abortingAgent's Apply fails part-way and rolls back by itself (agent/apply answers Aborted).
type abortingAgent struct{ fakeAgent }

func (a *abortingAgent) Apply(ctx context.Context, r *kvmnetv1.ApplyRequest, o ...grpc.CallOption) (*kvmnetv1.ApplyResponse, error) {
	if r.GetDryRun() {
		return a.fakeAgent.Apply(ctx, r, o...)
	}
	a.record("apply")
	return nil, status.Error(codes.Aborted, "apply failed and was rolled back: no IPv4 address on enp1s0 within 30s")
}

// TestApplyAbortedIsReportedRolledBack: an Apply the agent already rolled back is reported as rolled
// back (result and text), not as "rolls back by itself" later.
func TestApplyAbortedIsReportedRolledBack(t *testing.T) {
	a := &abortingAgent{}
	var out bytes.Buffer
	d := guestDeps(&a.fakeAgent, func() []snapshot.Lease { return nil }, &out)
	d.DialAgent = func(context.Context, snapshot.Guest) (Agent, error) { return a, nil }
	res, err := Guest(context.Background(), d, fixplan.GuestOptions{Domain: "vm1", RollbackTimeout: 10 * time.Second}, false)
	if err == nil || status.Code(errors.Unwrap(err)) != codes.Aborted || strings.Contains(err.Error(), "rolls back by itself") {
		t.Fatalf("err = %v", err)
	}
	if !res.RolledBack || res.Confirmed || !strings.Contains(out.String(), "apply failed in vm1 and the agent rolled it back") {
		t.Fatalf("result %+v, output:\n%s", res, out.String())
	}
}
