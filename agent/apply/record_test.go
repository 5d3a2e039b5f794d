package apply

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/kvmnet/kvmnet/agent/config"
	"github.com/kvmnet/kvmnet/agent/managedfile"
	"github.com/kvmnet/kvmnet/agent/nm"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// recordedSysctl fails the test when a live sysctl changes before the record on disk holds its old
// value.
type recordedSysctl struct {
	ProcSysctl
	t       *testing.T
	records FileRecords
}

func (s recordedSysctl) Set(key, value string) error {
	r, err := s.records.Load()
	if err != nil || r == nil || !r.Applying {
		s.t.Errorf("sysctl %s set while the record on disk is %+v (%v)", key, r, err)
	} else if _, ok := r.Sysctl[key]; !ok {
		s.t.Errorf("sysctl %s set before its old value was on disk: %v", key, r.Sysctl)
	}
	return s.ProcSysctl.Set(key, value)
}

// recordedNM fails the test when a profile is added before the record on disk names it.
type recordedNM struct {
	*fakeNM
	t       *testing.T
	records FileRecords
}

func (n recordedNM) AddProfile(ctx context.Context, s nm.Settings) (dbus.ObjectPath, error) {
	uuid, _ := s["connection"]["uuid"].Value().(string)
	r, err := n.records.Load()
	if err != nil || r == nil || r.NM == nil || len(r.NM.Created) == 0 || r.NM.Created[len(r.NM.Created)-1].UUID != uuid {
		n.t.Errorf("profile %s added before the record on disk named it: %+v (%v)", uuid, r, err)
	}
	return n.fakeNM.AddProfile(ctx, s)
}

// withRecords gives e's Applier a record file in its state directory and a boot id.
func withRecords(t *testing.T, e *env, boot string) FileRecords {
	t.Helper()
	rec := FileRecords{Path: filepath.Join(e.root, managedfile.DefaultStateDir, RecordFile)}
	setBoot(t, e.root, boot)
	e.a.o.Records = rec
	return rec
}

func setBoot(t *testing.T, root, boot string) {
	t.Helper()
	p := filepath.Join(root, "proc/sys/kernel/random/boot_id")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(boot+"\n"), 0o444); err != nil {
		t.Fatal(err)
	}
}

// restart is what a SIGKILL and a new agent process do to e: the old Applier forgets everything
// without undoing anything (its timer stopped), and a new one on the same root resumes.
func restart(t *testing.T, e *env, rec FileRecords) (*Applier, []string, error) {
	t.Helper()
	if p := e.a.pending; p != nil {
		p.timer.Stop()
		e.a.setPending(nil)
	}
	a := New(Options{Config: e.a.o.Config, NM: e.nm, Files: e.a.o.Files, Sysctl: ProcSysctl{Root: e.root},
		NICs: e.a.o.NICs, Records: rec})
	t.Cleanup(func() { _ = a.Close() })
	restored, err := a.Resume(context.Background())
	return a, restored, err
}

// TestRecordOnDiskBeforeEachChange: the old value of a sysctl and the uuid of a new profile are on
// disk before the change is made; after Confirm the record is gone.
func TestRecordOnDiskBeforeEachChange(t *testing.T) {
	e := newEnv(t, config.Default())
	rec := withRecords(t, e, "boot-1")
	e.a.o.Sysctl = recordedSysctl{ProcSysctl: ProcSysctl{Root: e.root}, t: t, records: rec}
	e.a.setNM(recordedNM{fakeNM: e.nm, t: t, records: rec})
	resp, err := e.a.Apply(context.Background(), &kvmnetv1.ApplyRequest{RollbackTimeoutSeconds: 30,
		Actions: []*kvmnetv1.Action{setIPv6(true), ensure(mac1, 0, 5)}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := rec.Load()
	if err != nil || r == nil || r.Applying || r.ID != resp.CheckpointId || r.BootID != "boot-1" ||
		!r.Deadline.Equal(resp.RollbackDeadline.AsTime()) || r.NM == nil || r.NM.Checkpoint != "/cp/1" || len(r.Changes) != len(resp.Changes) {
		t.Fatalf("record after Apply: %+v, %v", r, err)
	}
	if err := e.a.Confirm(context.Background(), resp.CheckpointId); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(rec.Path); !os.IsNotExist(err) {
		t.Fatalf("record left after Confirm: %v", err)
	}
}

// TestResumeAfterKill: a new agent process finds the record of a checkpoint the old one left
// pending and restores it when it is due (deadline passed, guest rebooted, Apply never finished),
// else takes it over so that Confirm still works.
func TestResumeAfterKill(t *testing.T) {
	for _, tc := range []struct {
		name     string
		boot     string          // boot id after the restart
		edit     func(r *Record) // what else happened while no agent ran
		restored bool            // restored at start-up
	}{
		{name: "deadline ahead: taken over", boot: "boot-1"},
		{name: "deadline passed", boot: "boot-1", restored: true,
			edit: func(r *Record) { r.Deadline = time.Now().Add(-time.Second) }},
		{name: "guest rebooted", boot: "boot-2", restored: true},
		{name: "killed in the middle of the Apply", boot: "boot-1", restored: true,
			edit: func(r *Record) { r.Applying, r.Deadline = true, time.Time{} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, config.Default())
			rec := withRecords(t, e, "boot-1")
			ctx := context.Background()
			resp, err := e.a.Apply(ctx, &kvmnetv1.ApplyRequest{RollbackTimeoutSeconds: 60,
				Actions: []*kvmnetv1.Action{setIPv6(true), forceIPv4(true), ensure(mac1, 0, 5)}})
			if err != nil {
				t.Fatal(err)
			}
			if e.read(t, "proc/sys/net/ipv6/conf/all/disable_ipv6") != "1\n" || e.read(t, "etc/sysctl.d/99-kvmnet-disable-ipv6.conf") == "<absent>" {
				t.Fatal("Apply changed nothing")
			}
			if tc.edit != nil {
				r, err := rec.Load()
				if err != nil {
					t.Fatal(err)
				}
				tc.edit(r)
				if err := rec.Save(r); err != nil {
					t.Fatal(err)
				}
			}
			setBoot(t, e.root, tc.boot)
			before := e.nm.called()
			a, restored, err := restart(t, e, rec)
			if err != nil {
				t.Fatal(err)
			}
			nmAfter := strings.TrimPrefix(strings.TrimPrefix(e.nm.called(), before), ",")
			back := e.read(t, "proc/sys/net/ipv6/conf/all/disable_ipv6") == "0\n" &&
				e.read(t, "etc/sysctl.d/99-kvmnet-disable-ipv6.conf") == "<absent>" &&
				e.read(t, "etc/apt/apt.conf.d/99kvmnet-force-ipv4") == "<absent>"
			if !tc.restored {
				if back || len(restored) > 0 || a.Pending().GetId() != resp.CheckpointId || nmAfter != "" {
					t.Fatalf("restored %v (files back %t), pending %v, NM calls %q", restored, back, a.Pending(), nmAfter)
				}
				if err := a.Confirm(ctx, resp.CheckpointId); err != nil {
					t.Fatal(err)
				}
				if _, err := os.Stat(rec.Path); !os.IsNotExist(err) {
					t.Fatalf("record left after Confirm: %v", err)
				}
				return
			}
			t.Logf("restored: %q; NM calls after the restart: %s", restored, nmAfter)
			if !back || a.Pending() != nil {
				t.Fatalf("not restored at start-up: %q, pending %v", restored, a.Pending())
			}
			if _, err := os.Stat(rec.Path); !os.IsNotExist(err) {
				t.Fatalf("record left after the restore: %v", err)
			}
			if tc.boot != "boot-1" {
				// NetworkManager's checkpoint died with the old boot: the profile the Apply created
				// is deleted from the agent's record, no checkpoint is rolled back.
				if strings.Contains(nmAfter, "rollback") || !strings.Contains(nmAfter, "delete:/c/kvm-dhcp-enp1s0") {
					t.Fatalf("NM calls after a reboot: %s", nmAfter)
				}
			} else if !strings.HasPrefix(nmAfter, "rollback") {
				t.Fatalf("NM checkpoint not rolled back: %s", nmAfter)
			}
		})
	}
}

// TestRecordCorruptIsReported: a record that cannot be read is an error naming the file, and the
// Applier still works.
func TestRecordCorruptIsReported(t *testing.T) {
	e := newEnv(t, config.Default())
	rec := withRecords(t, e, "boot-1")
	if err := managedfile.WriteAtomic(rec.Path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := e.a.Resume(context.Background()); err == nil || !strings.Contains(err.Error(), rec.Path) {
		t.Fatalf("Resume with a corrupt record: %v", err)
	}
	if _, err := e.a.Apply(context.Background(), &kvmnetv1.ApplyRequest{Actions: []*kvmnetv1.Action{setIPv6(true)}}); err != nil {
		t.Fatal(err)
	}
}
