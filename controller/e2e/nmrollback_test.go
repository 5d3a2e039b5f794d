//go:build lab

package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// nmProfiles lists the guest's NetworkManager profiles as "name:uuid:device" lines, sorted.
func nmProfiles(ctx context.Context, vm string) (string, error) {
	res := lab.Exec(ctx, vm, "nmcli", "-t", "-f", "NAME,UUID,DEVICE", "connection", "show")
	if res.Code != 0 {
		return "", fmt.Errorf("nmcli in %s: %s", vm, res)
	}
	lines := strings.Split(strings.TrimSpace(res.Stdout), "\n")
	slices.Sort(lines)
	return strings.Join(lines, "\n"), nil
}

// TestNMFixRollback: the NetworkManager guest's rollback case. A profile bound to the wrong
// interface name is planted; a fix the host never confirms (its check URL serves nothing) is
// rolled back by NetworkManager's checkpoint and the agent's record: the guest's profiles are
// exactly as before (the user's profile back with its uuid, kvmnet's gone) and the finding is
// reported again. The real fix then makes the guest healthy.
func TestNMFixRollback(t *testing.T) {
	ctx := context.Background()
	if err := Poll(ctx, 4*time.Minute, 2*time.Second, func() error { return healthy(ctx) }); err != nil {
		t.Fatalf("healthy baseline not reached: %v", err)
	}
	f := fault{name: "profile_wrong_ifname", guest: g1, code: "guest_profile_wrong_interface"}
	if res := lab.Script(ctx, "fault", f.name, "inject", g1); res.Code != 0 {
		t.Fatalf("inject %s:\n%s", f.name, res)
	}
	fixed := false
	defer func() {
		if !fixed {
			restore(ctx, t, f, false)
		}
	}()
	reported := func() error {
		rep, _, err := lab.Status(ctx, g1)
		if err != nil {
			return err
		}
		if !rep.Has(f.code) {
			return fmt.Errorf("%s not reported; codes: %v", f.code, rep.Codes())
		}
		return nil
	}
	if err := Poll(ctx, 3*time.Minute, 2*time.Second, reported); err != nil {
		t.Fatal(err)
	}
	before, err := nmProfiles(ctx, g1)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("profiles before:\n%s", before)

	t0 := time.Now()
	res := lab.Ctl(ctx, "guests", "fix", g1, "--yes", "--rollback-timeout", "30s", "--check-url", "http://203.0.113.1:9/never")
	if res.Code == 0 {
		t.Fatalf("fix with an unreachable check URL succeeded:\n%s", res)
	}
	if !strings.Contains(res.Stdout+res.Stderr, "kvm-dhcp-") {
		t.Fatalf("the fix did not try kvmnet's profile:\n%s", res)
	}
	var after string
	err = Poll(ctx, 90*time.Second, 2*time.Second, func() error {
		var err error
		if after, err = nmProfiles(ctx, g1); err != nil {
			return err
		}
		if after != before {
			return fmt.Errorf("profiles not back yet:\n%s", after)
		}
		return reported()
	})
	if err != nil {
		t.Fatalf("rollback case: %v\nfix output:\n%s", err, res)
	}
	t.Logf("rollback case: profiles as before %s after the fix began (fix exit %d after %s)\nfix output:\n%s",
		time.Since(t0).Round(time.Second), res.Code, res.Took.Round(time.Second), res.Stdout)

	t0 = time.Now()
	res = lab.Ctl(ctx, "guests", "fix", g1, "--yes")
	if res.Code != 0 {
		t.Fatalf("guests fix:\n%s", res)
	}
	fixTook := time.Since(t0)
	if err := Poll(ctx, 2*time.Minute, 2*time.Second, func() error { return healthy(ctx) }); err != nil {
		t.Fatalf("not healthy after the fix: %v\nfix output:\n%s", err, res)
	}
	fixed = true
	t.Logf("NetworkManager: guests fix to verified lease and confirm %s; healthy %s after it began",
		fixTook.Round(100*time.Millisecond), time.Since(t0).Round(time.Second))
}
