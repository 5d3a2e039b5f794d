//go:build lab

package stacks

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kvmnet/kvmnet/controller/e2e"
)

var (
	lab    *e2e.Lab
	images = map[string]string{}
)

// stackCase is what the e2e plants and checks per stack.
type stackCase struct {
	// file is the user's configuration file the wrong name goes into.
	file string
	// stale is its content naming an interface the guest does not have (ens3; the guest's is enp1s0).
	stale string
	// own is kvmnet's file after the fix.
	own string
}

var cases = map[string]stackCase{
	"netplan": {
		file:  "/etc/netplan/50-cloud-init.yaml",
		stale: "network:\n  version: 2\n  ethernets:\n    ens3:\n      dhcp4: true\n",
		own:   "/etc/netplan/90-kvmnet.yaml",
	},
	"networkd": {
		file:  "/etc/systemd/network/20-wired.network",
		stale: "[Match]\nName=ens3\n\n[Network]\nDHCP=ipv4\n",
		own:   "/etc/systemd/network/10-kvmnet-", // + MAC, checked by prefix
	},
	"ifupdown": {
		file:  "/etc/network/interfaces",
		stale: "source /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n\nallow-hotplug ens3\niface ens3 inet dhcp\n",
		own:   "/etc/network/interfaces.d/kvmnet-enp1s0",
	},
}

func stacks() []string {
	s := os.Getenv("KVMNET_LAB_STACKS")
	if s == "" {
		s = "netplan,networkd,ifupdown"
	}
	return strings.Split(s, ",")
}

func TestMain(m *testing.M) {
	e2e.Main(m, e2e.Suite{
		Title:   "stacks",
		NameEnv: "KVMNET_LAB_STACKS_NAME",
		Suffix:  "stacks",
		Tools:   []string{"virsh", "qemu-system-x86_64", "mmdebstrap"},
		Run: func(m *testing.M, l *e2e.Lab) int {
			lab = l
			return run(m)
		},
	})
}

func run(m *testing.M) int {
	ctx := context.Background()
	for _, s := range stacks() {
		img := lab.Script(ctx, "image", "--stack", s)
		if img.Code != 0 {
			fmt.Fprintf(os.Stderr, "image --stack %s:\n%s\n", s, img)
			return 1
		}
		images[s] = strings.TrimSpace(img.Stdout)
	}
	if res := lab.Script(ctx, "up"); res.Code != 0 {
		fmt.Fprintf(os.Stderr, "scripts/lab/up:\n%s\n", res)
		return 1
	}
	for _, s := range stacks() {
		if res := lab.Script(ctx, "vm", "create", vmName(s), "--names", "enp1s0", "--image", images[s]); res.Code != 0 {
			fmt.Fprintf(os.Stderr, "create guest for %s:\n%s\n", s, res)
			return 1
		}
	}
	return m.Run()
}

func vmName(stack string) string { return "st-" + stack }

// gsh runs a shell script in the guest through qemu-guest-agent.
func gsh(ctx context.Context, t *testing.T, vm, script string) string {
	t.Helper()
	res := lab.Exec(ctx, vm, "/bin/sh", "-c", script)
	if res.Code != 0 {
		t.Fatalf("in %s: %s:\n%s", vm, script, res)
	}
	return res.Stdout
}

// reboot restarts the guest and waits until its kvmnet agent answers again.
func reboot(ctx context.Context, t *testing.T, vm string) {
	t.Helper()
	boot := strings.TrimSpace(gsh(ctx, t, vm, "cat /proc/sys/kernel/random/boot_id"))
	_ = lab.Exec(ctx, vm, "/bin/sh", "-c", "sync; (sleep 1; systemctl reboot) >/dev/null 2>&1 &")
	time.Sleep(5 * time.Second) // the old boot's agent must not pass for the new one
	err := e2e.Poll(ctx, 300*time.Second, 3*time.Second, func() error {
		rep, _, err := lab.Status(ctx, vm)
		if err != nil {
			return err
		}
		if len(rep.Guests) != 1 || !rep.Guests[0].Agent.Reachable {
			return fmt.Errorf("agent of %s not reachable yet", vm)
		}
		// A new boot, not the old one still shutting down.
		if now := lab.Exec(ctx, vm, "cat", "/proc/sys/kernel/random/boot_id"); now.Code != 0 || strings.TrimSpace(now.Stdout) == boot {
			return fmt.Errorf("%s has not rebooted yet (boot id %s)", vm, boot)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s did not come back after the reboot: %v", vm, err)
	}
}

// healthy waits until the guest is healthy in guests status and its own curl reaches the mirror.
func healthy(ctx context.Context, vm string, timeout time.Duration) error {
	return e2e.Poll(ctx, timeout, 3*time.Second, func() error {
		rep, res, err := lab.Status(ctx, vm)
		if err != nil {
			return err
		}
		if len(rep.Guests) != 1 || !rep.Guests[0].Healthy {
			return fmt.Errorf("%s not healthy: %v\n%s", vm, rep.Codes(), res.Stdout)
		}
		return lab.GuestEgress(ctx, vm)
	})
}

// broken plants the stale configuration and reboots, then waits for guest_no_ipv4.
func broken(ctx context.Context, t *testing.T, stack string) {
	t.Helper()
	c, vm := cases[stack], vmName(stack)
	gsh(ctx, t, vm, fmt.Sprintf("printf '%%s' '%s' > %s && chmod 0600 %s", c.stale, c.file, c.file))
	reboot(ctx, t, vm)
	err := e2e.Poll(ctx, 120*time.Second, 3*time.Second, func() error {
		rep, res, err := lab.Status(ctx, vm)
		if err != nil {
			return err
		}
		if !rep.Has("guest_no_ipv4") {
			return fmt.Errorf("no guest_no_ipv4 yet: %v\n%s", rep.Codes(), res.Stdout)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("wrong name not detected: %v", err)
	}
}

func TestStacks(t *testing.T) {
	ctx := context.Background()
	for _, stack := range stacks() {
		t.Run(stack, func(t *testing.T) {
			c, vm := cases[stack], vmName(stack)
			if err := healthy(ctx, vm, 120*time.Second); err != nil {
				t.Fatalf("fresh %s guest: %v", stack, err)
			}
			broken(ctx, t, stack)

			// The host never confirms (a check URL nothing serves): everything comes back.
			res := lab.Ctl(ctx, "guests", "fix", vm, "--yes", "--rollback-timeout", "30s", "--check-url", "http://203.0.113.1:9/never")
			if res.Code == 0 {
				t.Fatalf("fix with an unreachable check URL succeeded:\n%s", res)
			}
			err := e2e.Poll(ctx, 90*time.Second, 3*time.Second, func() error {
				got := lab.Exec(ctx, vm, "cat", c.file)
				if got.Stdout != c.stale {
					return fmt.Errorf("%s is not the user's file again: %q", c.file, got.Stdout)
				}
				if own := lab.Exec(ctx, vm, "/bin/sh", "-c", "ls "+c.own+"* 2>/dev/null"); strings.TrimSpace(own.Stdout) != "" {
					return fmt.Errorf("kvmnet's file %s still there", own.Stdout)
				}
				return nil
			})
			if err != nil {
				t.Fatalf("rollback case: %v\nfix output:\n%s", err, res)
			}
			t.Logf("rollback case: original files back (fix exit %d after %s)", res.Code, res.Took.Round(time.Second))

			// The real fix.
			t0 := time.Now()
			res = lab.Ctl(ctx, "guests", "fix", vm, "--yes")
			if res.Code != 0 {
				t.Fatalf("guests fix:\n%s", res)
			}
			fixTook := time.Since(t0)
			if err := healthy(ctx, vm, 60*time.Second); err != nil {
				t.Fatalf("after the fix: %v\nfix output:\n%s", err, res)
			}
			t.Logf("STACK %s: guests fix to verified lease and confirm %s", stack, fixTook.Round(100*time.Millisecond))
			t.Logf("fix output:\n%s", res.Stdout)

			reboot(ctx, t, vm)
			if err := healthy(ctx, vm, 120*time.Second); err != nil {
				t.Fatalf("after a reboot (no further call): %v", err)
			}
		})
	}
}
