//go:build lab

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestFirewalld: Debian's firewalld (nftables backend) as the lab host's firewall, on a private bus
// in the lab host's namespaces, next to libvirt's iptables-nft rules (scripts/lab/firewalld). With
// virbr0 in libvirt's zone nothing is reported and g2's curl works. Then each fault is detected
// naming the zone or policy, the dry run changes nothing, `host fix` makes g2's own curl work again:
// the libvirt zone removed (virbr0 falls into public), and a policy rejecting forwarded traffic
// from the libvirt zone.
func TestFirewalld(t *testing.T) {
	ctx := context.Background()
	script := func(args ...string) {
		t.Helper()
		if res := lab.Script(ctx, "firewalld", args...); res.Code != 0 {
			t.Fatalf("firewalld %v:\n%s", args, res)
		}
	}
	t0 := time.Now()
	script("up")
	t.Cleanup(func() {
		if res := lab.Script(ctx, "firewalld", "down"); res.Code != 0 {
			t.Errorf("cleanup: firewalld down:\n%s", res)
		}
		if err := Poll(ctx, 2*time.Minute, 2*time.Second, func() error { return lab.GuestEgress(ctx, g2) }); err != nil {
			t.Errorf("after firewalld down: %v", err)
		}
	})
	t.Logf("firewalld up in %s", time.Since(t0).Round(time.Millisecond))
	if err := Poll(ctx, time.Minute, 2*time.Second, func() error { return lab.GuestEgress(ctx, g2) }); err != nil {
		t.Fatalf("with virbr0 in the libvirt zone: %v", err)
	}
	rep, _, err := lab.HostCheck(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if e := rep.Errors(); len(e) > 0 {
		t.Fatalf("healthy firewalld reported with errors: %v", rep.Codes())
	}

	// detectFixed waits for code, checks the summary, the dry run and the fix, then g2's curl.
	detectFixed := func(t *testing.T, code string, summary []string, dryRun []string) {
		t.Helper()
		t1 := time.Now()
		var f Finding
		if err := Poll(ctx, 2*time.Minute, 2*time.Second, func() error {
			rep, _, err := lab.HostCheck(ctx)
			if err != nil {
				return err
			}
			if fs := hostFinding(rep, code); len(fs) > 0 {
				f = fs[0]
				return nil
			}
			return fmt.Errorf("%s not reported; codes %v", code, rep.Codes())
		}); err != nil {
			t.Fatal(err)
		}
		t.Logf("detected after %s: %s", time.Since(t1).Round(time.Millisecond), f.Summary)
		for _, want := range summary {
			if !strings.Contains(f.Summary, want) {
				t.Errorf("summary lacks %q: %s", want, f.Summary)
			}
		}
		if f.Severity != "error" || !strings.Contains(f.Fix, "host fix --only "+code) {
			t.Errorf("severity %s, fix %s", f.Severity, f.Fix)
		}
		if lab.GuestEgress(ctx, g2) == nil {
			t.Fatalf("%s is reported but g2's curl still works: the lab does not reproduce the fault", code)
		}
		dry := lab.Ctl(ctx, "host", "fix", "--dry-run", "--only", code)
		for _, want := range dryRun {
			if !strings.Contains(dry.Stdout, want) {
				t.Fatalf("dry run lacks %q:\n%s", want, dry)
			}
		}
		if lab.GuestEgress(ctx, g2) == nil {
			t.Fatal("the dry run changed something: g2's curl works")
		}
		t2 := time.Now()
		if res := lab.Ctl(ctx, "host", "fix", "--yes", "--only", code); res.Code != 0 {
			t.Fatalf("host fix:\n%s", res)
		}
		t.Logf("host fix took %s", time.Since(t2).Round(time.Millisecond))
		if err := Poll(ctx, 2*time.Minute, 2*time.Second, func() error { return lab.GuestEgress(ctx, g2) }); err != nil {
			t.Fatalf("after the fix: %v", err)
		}
		rep, _, err := lab.HostCheck(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(hostFinding(rep, code)) > 0 || len(rep.Errors()) > 0 {
			t.Fatalf("still reported after the fix: %v", rep.Codes())
		}
	}

	t.Run("libvirt zone removed", func(t *testing.T) {
		script("zone-remove")
		defer script("zone-restore")
		detectFixed(t, "firewalld_zone_missing", []string{`no "libvirt" zone`, "virbr0 (network default) is in zone public", "DHCP reject in zone public"},
			[]string{"firewall-cmd --permanent --new-zone=libvirt", "--zone=libvirt --change-interface=virbr0", "warning: the bridge virbr0 is bound"})
	})

	t.Run("policy rejects forwarded traffic", func(t *testing.T) {
		script("policy-reject")
		defer script("policy-undo")
		detectFixed(t, "firewalld_policy_reject_forward", []string{"firewalld policy lab-no-fwd", "target REJECT", "ingress libvirt"},
			[]string{"--new-policy=kvmnet-libvirt", "--set-priority=-2", "warning: policy lab-no-fwd no longer filters"})
	})
}
