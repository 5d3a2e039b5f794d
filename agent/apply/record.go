package apply

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/kvmnet/kvmnet/agent/managedfile"
	"github.com/kvmnet/kvmnet/agent/nm"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// Record is what a pending checkpoint must undo, kept on disk so that a rollback survives the
// agent: killed (SIGKILL, OOM, a crash) or the guest rebooted while a checkpoint was pending, the
// next agent process restores from it at start-up (Applier.Resume). It is saved, atomically, before
// every change is made, so it always covers at least every change already made.
//
// It is backend-neutral: previous file contents (any backend's configuration files), live sysctl
// values, and the changes of a network backend that has its own objects (NetworkManager's profiles
// today; a backend that only writes files needs nothing beyond Files).
type Record struct {
	// Version of the record format.
	Version int `json:"version"`
	// ID is the checkpoint id.
	ID string `json:"id"`
	// BootID is /proc/sys/kernel/random/boot_id when the checkpoint was made: a different one at
	// start-up means the guest rebooted, and whatever lived in memory (NetworkManager's checkpoint)
	// is gone.
	BootID string `json:"boot_id"`
	// Applying is true while the Apply runs, and when a restore is owed that could not be made yet:
	// an agent that finds it at start-up restores at once.
	Applying bool `json:"applying"`
	// Deadline is when the checkpoint rolls back unless confirmed (zero while Applying).
	Deadline time.Time `json:"deadline"`
	// Changes are the checkpoint's changes as GetState reports them.
	Changes []RecordChange `json:"changes"`
	// Files holds the previous content (and kvmnet's record) of every file the plan touches.
	Files *managedfile.Snapshot `json:"files,omitempty"`
	// Sysctl holds the live value of every sysctl changed, before the change.
	Sysctl map[string]string `json:"sysctl,omitempty"`
	// NM holds NetworkManager's part; nil when the plan did not touch NetworkManager.
	NM *NMRecord `json:"nm,omitempty"`
	// Stacks are the file-based stacks (netplan, networkd, ifupdown) whose commands a restore
	// re-runs around the file restore.
	Stacks []RecordStack `json:"stacks,omitempty"`
}

// RecordChange is one kvmnetv1.Change of a Record.
type RecordChange struct {
	// Kind, Target and Summary as in kvmnetv1.Change.
	Kind    string `json:"kind"`
	Target  string `json:"target"`
	Summary string `json:"summary"`
}

// NMRecord is NetworkManager's part of a Record: its checkpoint, and the agent's own record of the
// profiles (see nmrestart.go), which is what a restore without that checkpoint uses.
type NMRecord struct {
	// Checkpoint is NetworkManager's checkpoint object path.
	Checkpoint string `json:"checkpoint"`
	// Owner is the unique bus name of the NetworkManager process holding Checkpoint.
	Owner string `json:"owner"`
	// Lost says how Checkpoint was lost (NetworkManager restarted, the guest rebooted); "" while
	// it is not.
	Lost string `json:"lost,omitempty"`
	// Created are the profiles the Apply added.
	Created []RecordProfile `json:"created,omitempty"`
	// Deleted are the settings of the profiles the Apply deleted (nm.EncodeSettings).
	Deleted [][]byte `json:"deleted,omitempty"`
	// Updated maps the uuid of each profile the Apply changed to its settings before
	// (nm.EncodeSettings).
	Updated map[string][]byte `json:"updated,omitempty"`
	// Before maps each touched interface to the uuid of the profile active on it before ("": none).
	Before map[string]string `json:"before,omitempty"`
	// HadIPv4 says whether each touched interface had an IPv4 address before.
	HadIPv4 map[string]bool `json:"had_ipv4,omitempty"`
}

// RecordProfile names a profile by uuid and id.
type RecordProfile struct {
	// UUID and ID of the profile.
	UUID string `json:"uuid"`
	ID   string `json:"id"`
}

// RecordStore keeps the one pending Record.
type RecordStore interface {
	// Save replaces the stored record with r, durably, before it returns.
	Save(r *Record) error
	// Load returns the stored record, or nil when there is none.
	Load() (*Record, error)
	// Clear removes the stored record, durably.
	Clear() error
}

// recordVersion is the Record format written by this agent.
const recordVersion = 1

// RecordFile is the file name of FileRecords in the agent's state directory.
const RecordFile = "pending.json"

// BootIDKey is the sysctl holding the id of the current boot.
const BootIDKey = "kernel.random.boot_id"

// FileRecords stores the Record as JSON in one file (written to a temporary file, fsynced, renamed
// over it, directory fsynced: after a crash it holds either the old or the new record).
type FileRecords struct {
	// Path of the record file, e.g. /var/lib/kvmnet/pending.json.
	Path string
}

// Save implements RecordStore.
func (f FileRecords) Save(r *Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode rollback record: %w", err)
	}
	if err := managedfile.WriteAtomic(f.Path, b, 0o600); err != nil {
		return fmt.Errorf("save rollback record %s: %w", f.Path, err)
	}
	return nil
}

// Load implements RecordStore.
func (f FileRecords) Load() (*Record, error) {
	b, err := os.ReadFile(f.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read rollback record %s: %w", f.Path, err)
	}
	r := &Record{}
	if err := json.Unmarshal(b, r); err != nil {
		return nil, fmt.Errorf("parse rollback record %s: %w (move it away to start without it; the backups it names are in the same directory)", f.Path, err)
	}
	if r.Version != recordVersion {
		return nil, fmt.Errorf("rollback record %s has version %d, this agent reads %d", f.Path, r.Version, recordVersion)
	}
	return r, nil
}

// Clear implements RecordStore.
func (f FileRecords) Clear() error {
	if err := managedfile.RemoveSynced(f.Path); err != nil {
		return fmt.Errorf("remove rollback record %s: %w", f.Path, err)
	}
	return nil
}

// record returns p as a Record.
func (p *pending) record(bootID string) (*Record, error) {
	r := &Record{Version: recordVersion, ID: p.id, BootID: bootID, Applying: p.applying, Deadline: p.deadline,
		Files: p.snap, Sysctl: p.sysctl}
	for _, c := range p.changes {
		r.Changes = append(r.Changes, RecordChange{Kind: c.GetKind(), Target: c.GetTarget(), Summary: c.GetSummary()})
	}
	for _, st := range p.stacks {
		r.Stacks = append(r.Stacks, RecordStack{Backend: planName(st.plan), Plan: st.plan})
	}
	if p.nmCP == "" {
		return r, nil
	}
	n := &NMRecord{Checkpoint: string(p.nmCP), Owner: p.nmOwner, Lost: p.lost, Before: p.before, HadIPv4: p.hadIPv4}
	for _, c := range p.created {
		n.Created = append(n.Created, RecordProfile{UUID: c.uuid, ID: c.id})
	}
	for _, s := range p.deleted {
		b, err := nm.EncodeSettings(s)
		if err != nil {
			return nil, err
		}
		n.Deleted = append(n.Deleted, b)
	}
	if len(p.updated) > 0 {
		n.Updated = map[string][]byte{}
	}
	for uuid, s := range p.updated {
		b, err := nm.EncodeSettings(s)
		if err != nil {
			return nil, err
		}
		n.Updated[uuid] = b
	}
	r.NM = n
	return r, nil
}

// pendingFrom rebuilds a pending checkpoint from its Record (its timer is not armed).
func pendingFrom(r *Record) (*pending, error) {
	p := &pending{id: r.ID, deadline: r.Deadline, snap: r.Files, sysctl: r.Sysctl, applying: r.Applying, incomplete: r.Applying,
		updated: map[string]nm.Settings{}}
	if p.sysctl == nil {
		p.sysctl = map[string]string{}
	}
	for _, c := range r.Changes {
		p.changes = append(p.changes, &kvmnetv1.Change{Kind: c.Kind, Target: c.Target, Summary: c.Summary})
	}
	for _, st := range r.Stacks {
		// The backend is looked up by name when the rollback runs (rollbackStacks).
		p.stacks = append(p.stacks, &stackRecord{plan: st.Plan})
	}
	if r.NM == nil {
		return p, nil
	}
	p.nmCP, p.nmOwner, p.lost, p.before, p.hadIPv4 = dbus.ObjectPath(r.NM.Checkpoint), r.NM.Owner, r.NM.Lost, r.NM.Before, r.NM.HadIPv4
	for _, c := range r.NM.Created {
		p.created = append(p.created, createdProfile{uuid: c.UUID, id: c.ID})
	}
	for _, b := range r.NM.Deleted {
		s, err := nm.DecodeSettings(b)
		if err != nil {
			return nil, fmt.Errorf("rollback record %s: deleted profile: %w", r.ID, err)
		}
		p.deleted = append(p.deleted, s)
	}
	for uuid, b := range r.NM.Updated {
		s, err := nm.DecodeSettings(b)
		if err != nil {
			return nil, fmt.Errorf("rollback record %s: changed profile %s: %w", r.ID, uuid, err)
		}
		p.updated[uuid] = s
	}
	return p, nil
}
