package service

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kvmnet/kvmnet/agent/nm"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
	"github.com/kvmnet/kvmnet/scripts/lab/testenv"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// nmView is NetworkManager's state as read over D-Bus by a client of the test's own, not the
// service's: profiles saved in the keyfile directory (id=uuid; in-memory ones such as "lo" get a
// new uuid at every start and are left out), the profile active per device, and the checkpoints.
type nmView struct {
	saved       string
	active      map[string]string
	checkpoints int
}

func readNM(t *testing.T, lab *testenv.NMLab) nmView {
	t.Helper()
	c := nm.Dial(lab.Bus.Address, nm.Options{CallTimeout: 3 * time.Second})
	defer c.Close()
	ctx := context.Background()
	st, err := c.State(ctx)
	if err != nil {
		t.Fatalf("read NetworkManager: %v", err)
	}
	cps, err := c.Checkpoints(ctx)
	if err != nil {
		t.Fatalf("read NetworkManager's checkpoints: %v", err)
	}
	v := nmView{active: map[string]string{}, checkpoints: len(cps)}
	var saved []string
	for _, p := range st.Profiles {
		if strings.HasPrefix(p.Filename, lab.NM.ConnDir+"/") {
			saved = append(saved, p.ID+"="+p.UUID)
		}
		if p.Active {
			v.active[p.ActiveDevice] = p.ID
		}
	}
	sort.Strings(saved)
	v.saved = strings.Join(saved, " ")
	return v
}

// restartLab is a guest whose enp1s0 runs the static profile office-static (10.77.0.50/24) next to
// the stale "Wired eth0": both are deleted by the Apply below and must come back. With noLease,
// dnsmasq ignores enp1s0, so the Apply sits in its lease wait.
func restartLab(t *testing.T, noLease bool) (*testenv.NMLab, *Service, nmView) {
	t.Helper()
	o := testenv.NMLabOptions{Prefix: "nk",
		NICs: []testenv.GuestNIC{{Name: "enp1s0", MAC: macA, OnBridge: true}},
		NM: testenv.NMOptions{Keyfiles: map[string]string{"static.nmconnection": staticEnp1s0,
			"wired-eth0.nmconnection": staleEth0}},
	}
	if noLease {
		o.DnsmasqExtra = []string{"--dhcp-host=" + macA + ",ignore"}
	}
	lab := testenv.NewNMLab(t, o)
	s := realService(t, lab)
	if err := testenv.WaitFor(20*time.Second, 100*time.Millisecond, func() (bool, error) { return staticOn(t, lab), nil }); err != nil {
		t.Fatalf("static profile not active at start: %v", lab.IPv4("enp1s0"))
	}
	before := readNM(t, lab)
	if !strings.Contains(before.saved, "office-static=6f2f0d6e-4444") || !strings.Contains(before.saved, "Wired eth0=6f2f0d6e-3333") {
		t.Fatalf("profiles at start: %s", before.saved)
	}
	return lab, s, before
}

// staticOn reports whether enp1s0 runs office-static with its address (read from NetworkManager and
// from the kernel).
func staticOn(t *testing.T, lab *testenv.NMLab) bool {
	a := lab.IPv4("enp1s0")
	return readNM(t, lab).active["enp1s0"] == "office-static" && len(a) == 1 && a[0] == "10.77.0.50/24"
}

// assertPrevious checks the guest is back in its configuration from before the Apply: the same saved
// profiles with the same uuids (kvm-dhcp-enp1s0 gone), office-static active on enp1s0 with
// 10.77.0.50/24, and no checkpoint left in NetworkManager.
func assertPrevious(t *testing.T, lab *testenv.NMLab, before nmView) {
	t.Helper()
	after := readNM(t, lab)
	if after.saved != before.saved {
		t.Errorf("saved profiles\n got %s\nwant %s", after.saved, before.saved)
	}
	if after.active["enp1s0"] != "office-static" || after.checkpoints != 0 {
		t.Errorf("after restore: active %v, %d checkpoint(s) in NetworkManager", after.active, after.checkpoints)
	}
	if a := lab.IPv4("enp1s0"); len(a) != 1 || a[0] != "10.77.0.50/24" {
		t.Errorf("enp1s0 has %v, want [10.77.0.50/24]", a)
	}
}

type applyResult struct {
	resp *kvmnetv1.ApplyResponse
	err  error
	at   time.Time
}

// startApply runs the Apply that replaces office-static by kvm-dhcp-enp1s0 and returns once
// NetworkManager activates kvm-dhcp-enp1s0 (the lease wait has begun).
func startApply(t *testing.T, lab *testenv.NMLab, s *Service) <-chan applyResult {
	t.Helper()
	done := make(chan applyResult, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
		defer cancel()
		resp, err := s.Apply(ctx, ensureReq(macA, 60, 60, true))
		done <- applyResult{resp, err, time.Now()}
	}()
	if err := testenv.WaitFor(20*time.Second, 50*time.Millisecond, func() (bool, error) {
		return readNM(t, lab).active["enp1s0"] == "kvm-dhcp-enp1s0", nil
	}); err != nil {
		t.Fatalf("Apply did not reach the lease wait: %v", err)
	}
	time.Sleep(300 * time.Millisecond) // well inside WaitIPv4
	return done
}

// nmRestart is one way NetworkManager goes away by PID before it is started again on the same bus,
// keyfiles and /run/NetworkManager.
type nmRestart struct {
	name string
	down func(*testenv.NM)
	// stalePid plants, before the start, the pid file a daemonized NetworkManager (started without
	// --no-daemon by a non-systemd init) leaves behind when killed: it names the dead process.
	stalePid bool
}

// nmRestarts are `systemctl restart NetworkManager` (SIGTERM: a clean shutdown) and a crash
// (SIGKILL, as a segfault or the OOM killer, after which systemd's Restart=on-failure or the init
// script starts it again: no clean-up, and its bus name released only because the bus sees its
// socket close).
var nmRestarts = []nmRestart{
	{name: "sigterm", down: (*testenv.NM).Stop},
	{name: "sigkill", down: (*testenv.NM).Kill, stalePid: true},
}

// restartNM takes NetworkManager down the way r says and starts it again; it returns how long after
// kill NetworkManager answered again.
func restartNM(t *testing.T, lab *testenv.NMLab, r nmRestart, kill time.Time) time.Duration {
	t.Helper()
	dead := lab.NM.PID()
	r.down(lab.NM)
	pidfile := filepath.Join(lab.NM.RunDir, "NetworkManager.pid")
	if _, err := os.Stat(pidfile); !errors.Is(err, fs.ErrNotExist) {
		// --no-daemon (as under systemd) writes none; a leftover would be the test's own doing.
		t.Fatalf("%s: pid file %s after NetworkManager ended: %v", r.name, pidfile, err)
	}
	if r.stalePid {
		if err := os.WriteFile(pidfile, fmt.Appendf(nil, "%d\n", dead), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	lab.NM.Start()
	back := time.Since(kill)
	if r.stalePid {
		// A daemonized NetworkManager replaces it with its own; --no-daemon leaves it, so remove
		// it for the next restart of the test.
		if err := os.Remove(pidfile); err != nil {
			t.Fatal(err)
		}
	}
	return back
}

// TestNMRestartDuringApply: NetworkManager is restarted (stopped cleanly or killed by PID, started
// again on the same bus) while Apply waits for the lease. Its checkpoint dies with it; Apply returns
// at once with Aborted naming the restart, after restoring from the agent's own record: the deleted
// profiles are back with their uuids, the created one is gone, office-static runs on enp1s0 again,
// and nothing stays pending.
func TestNMRestartDuringApply(t *testing.T) {
	testenv.Require(t, binaries...)
	for _, rs := range nmRestarts {
		t.Run(rs.name, func(t *testing.T) {
			lab, s, before := restartLab(t, true)
			done := startApply(t, lab, s)

			kill := time.Now()
			back := restartNM(t, lab, rs, kill)
			r := <-done
			t.Logf("measured (%s): NetworkManager back %s after the kill; Apply returned %s after the kill: %v", rs.name, back, r.at.Sub(kill), r.err)
			if status.Code(r.err) != codes.Aborted {
				t.Fatalf("Apply: %v", r.err)
			}
			for _, want := range []string{"NetworkManager restarted", "during Apply", "wait up to 1m0s for an IPv4 address",
				"profile kvm-dhcp-enp1s0 (created by the Apply) deleted", "profile office-static", "profile Wired eth0 re-added"} {
				if !strings.Contains(r.err.Error(), want) {
					t.Errorf("error lacks %q", want)
				}
			}
			if strings.Contains(r.err.Error(), "rollback problems") {
				t.Errorf("rollback problems reported")
			}
			assertPrevious(t, lab, before)
			st, err := s.GetState(context.Background(), &kvmnetv1.GetStateRequest{})
			if err != nil || st.PendingCheckpoint != nil || !st.NetworkManager.GetRunning() {
				t.Fatalf("state after the Apply: pending %v, NM %v, %v", st.GetPendingCheckpoint(), st.GetNetworkManager(), err)
			}
		})
	}
}

// TestNMRestartWhilePending: the Apply succeeded and its checkpoint is pending when NetworkManager
// restarts (stopped cleanly or killed), which drops NetworkManager's checkpoint (asserted). The
// agent's checkpoint still keeps its promise: unconfirmed, its deadline restores the previous
// configuration from the agent's record; confirmed, the changes stay (they are saved profiles) and
// nothing rolls back later.
func TestNMRestartWhilePending(t *testing.T) {
	testenv.Require(t, binaries...)
	for _, rs := range nmRestarts {
		t.Run(rs.name, func(t *testing.T) {
			lab, s, before := restartLab(t, false)
			ctx := context.Background()

			resp, err := s.Apply(ctx, ensureReq(macA, 20, 10, true))
			if err != nil {
				t.Fatalf("%v\n%s", err, lab.Report())
			}
			if v := readNM(t, lab); v.checkpoints != 1 || v.active["enp1s0"] != "kvm-dhcp-enp1s0" {
				t.Fatalf("after Apply: %+v", v)
			}
			restartNM(t, lab, rs, time.Now())
			if v := readNM(t, lab); v.checkpoints != 0 {
				t.Fatalf("NetworkManager kept %d checkpoint(s) across its restart", v.checkpoints)
			}
			st, err := s.GetState(ctx, &kvmnetv1.GetStateRequest{})
			if err != nil || st.PendingCheckpoint.GetId() != resp.CheckpointId {
				t.Fatalf("pending after the restart: %v %v", st.GetPendingCheckpoint(), err)
			}
			// No Confirm: the agent's deadline must restore.
			deadline := resp.RollbackDeadline.AsTime()
			time.Sleep(time.Until(deadline))
			if err := testenv.WaitFor(30*time.Second, 100*time.Millisecond, func() (bool, error) { return staticOn(t, lab), nil }); err != nil {
				t.Fatalf("previous configuration not restored after the deadline: %+v %v", readNM(t, lab), lab.IPv4("enp1s0"))
			}
			t.Logf("measured (%s): previous configuration restored %s after the rollback deadline", rs.name, time.Since(deadline))
			if err := testenv.WaitFor(10*time.Second, 50*time.Millisecond, func() (bool, error) {
				st, err := s.GetState(ctx, &kvmnetv1.GetStateRequest{})
				return err == nil && st.PendingCheckpoint == nil, err
			}); err != nil {
				t.Fatalf("checkpoint still pending: %v", err)
			}
			assertPrevious(t, lab, before)
			if _, err := s.Confirm(ctx, &kvmnetv1.ConfirmRequest{CheckpointId: resp.CheckpointId}); status.Code(err) != codes.NotFound {
				t.Fatalf("late confirm: %v", err)
			}

			// Confirmed after a restart: kept.
			resp, err = s.Apply(ctx, ensureReq(macA, 20, 10, true))
			if err != nil {
				t.Fatalf("%v\n%s", err, lab.Report())
			}
			restartNM(t, lab, rs, time.Now())
			if _, err := s.Confirm(ctx, &kvmnetv1.ConfirmRequest{CheckpointId: resp.CheckpointId}); err != nil {
				t.Fatalf("confirm after the restart: %v", err)
			}
			time.Sleep(time.Until(resp.RollbackDeadline.AsTime().Add(2 * time.Second)))
			v := readNM(t, lab)
			if v.active["enp1s0"] != "kvm-dhcp-enp1s0" || strings.Contains(v.saved, "office-static") || strings.Contains(v.saved, "Wired eth0") {
				t.Fatalf("confirmed changes not kept: %+v", v)
			}
			if st, err := s.GetState(ctx, &kvmnetv1.GetStateRequest{}); err != nil || st.PendingCheckpoint != nil {
				t.Fatalf("pending after confirm: %v %v", st.GetPendingCheckpoint(), err)
			}
		})
	}
}

// TestNMStoppedDuringApply: NetworkManager is stopped while Apply waits for the lease and is not
// started again. Apply gives up after waiting apply.DefaultNMRestartWait for it, with Unavailable and
// an error telling the user to start NetworkManager; its checkpoint stays pending (GetState shows
// it as incomplete), Confirm is refused, and once NetworkManager runs again Rollback restores the
// previous configuration.
func TestNMStoppedDuringApply(t *testing.T) {
	testenv.Require(t, binaries...)
	lab, s, before := restartLab(t, true)
	ctx := context.Background()
	done := startApply(t, lab, s)

	kill := time.Now()
	lab.NM.Stop()
	r := <-done
	t.Logf("measured: Apply returned %s after NetworkManager was stopped: %v", r.at.Sub(kill), r.err)
	if status.Code(r.err) != codes.Unavailable {
		t.Fatalf("Apply: %v", r.err)
	}
	for _, want := range []string{"NetworkManager stopped during Apply", "start it (`systemctl start NetworkManager`)", "stays pending", "Rollback kvmnet-"} {
		if !strings.Contains(r.err.Error(), want) {
			t.Errorf("error lacks %q", want)
		}
	}
	st, err := s.GetState(ctx, &kvmnetv1.GetStateRequest{})
	if err != nil || st.NetworkManager.GetRunning() {
		t.Fatalf("state: %v %v", st.GetNetworkManager(), err)
	}
	cp := st.PendingCheckpoint
	if cp == nil || len(cp.Changes) == 0 || !strings.Contains(cp.Changes[0].Summary, "Apply did not complete") || !strings.Contains(r.err.Error(), cp.Id) {
		t.Fatalf("pending checkpoint %v", cp)
	}
	if _, err := s.Confirm(ctx, &kvmnetv1.ConfirmRequest{CheckpointId: cp.Id}); status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "can only be rolled back") {
		t.Fatalf("confirm of an incomplete Apply: %v", err)
	}

	lab.NM.Start()
	start := time.Now()
	rb, err := s.Rollback(ctx, &kvmnetv1.RollbackRequest{CheckpointId: cp.Id})
	t.Logf("measured: Rollback after NetworkManager's start took %s: %q", time.Since(start), rb.GetRestored())
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(rb.Restored, "; ")
	for _, want := range []string{"restored from the agent's own record", "kvm-dhcp-enp1s0 (created by the Apply) deleted", "office-static"} {
		if !strings.Contains(all, want) {
			t.Errorf("restored lacks %q: %s", want, all)
		}
	}
	if strings.Contains(all, "problems") {
		t.Errorf("rollback problems: %s", all)
	}
	assertPrevious(t, lab, before)
}
