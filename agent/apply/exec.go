package apply

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/kvmnet/kvmnet/agent/config"
	"github.com/kvmnet/kvmnet/agent/managedfile"
	"github.com/kvmnet/kvmnet/agent/netstack"
	"github.com/kvmnet/kvmnet/agent/nm"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// NM is what the Applier needs from NetworkManager; *nm.Client satisfies it. It is the
// NetworkManager backend's client (agent/netstack's NMClient).
type NM = netstack.NMClient

// NMStack is the NetworkManager backend the Applier drives (agent/netstack's *NetworkManager): a
// Backend whose Apply activates kvmnet's profile, a Checkpointer for NetworkManager's checkpoint,
// and the client the planner reads NetworkManager's state with.
type NMStack interface {
	netstack.Backend
	netstack.Checkpointer
	// Client is NetworkManager's client (nil: none).
	Client() netstack.NMClient
}

// Files is what the Applier needs from the file store; *managedfile.Store satisfies it.
type Files interface {
	Read(path string) ([]byte, error)
	Write(path string, body []byte, mode fs.FileMode) (managedfile.Result, error)
	Remove(path string) (managedfile.Result, error)
	Restore(path string) (managedfile.Result, error)
	Entry(path string) (managedfile.Entry, bool, error)
	Managed() ([]string, error)
	Snapshot(paths ...string) (*managedfile.Snapshot, error)
	RestoreSnapshot(snap *managedfile.Snapshot) ([]managedfile.Result, error)
}

// Sysctl reads and writes live kernel settings.
type Sysctl interface {
	Get(key string) (string, error)
	Set(key, value string) error
}

// NICLister lists the guest's NICs (from netlink).
type NICLister interface {
	NICs() ([]NIC, error)
}

// NMMargin is added to the NetworkManager checkpoint's own timeout: the agent's timer fires first
// and rolls back NetworkManager, files and sysctls in order; NetworkManager's timer is the fallback
// when the agent itself is gone. The checkpoint is created with a timeout covering the steps too
// (their longest waits) and re-armed after them (CheckpointAdjust) to the rollback timeout plus
// NMMargin from then, so NetworkManager never rolls back during the steps or inside the host's
// verification window, which starts when Apply answers.
const NMMargin = 5 * time.Second

// Options configures an Applier.
type Options struct {
	// Config gives the opt-outs and the default rollback timeout.
	Config config.Config
	// NM is NetworkManager's client, for the NetworkManager backend built when Stacks has none
	// (Stacks.Backend(netstack.NameNetworkManager)); nil with neither: every profile action fails
	// with a clear error.
	NM NM
	// Files is the file store.
	Files Files
	// Sysctl is the live sysctl backend.
	Sysctl Sysctl
	// NICs lists the guest's NICs.
	NICs NICLister
	// Logger gets one line per change (default: discard).
	Logger *slog.Logger
	// OnEvent, when set, is told about checkpoints (created, confirmed, rolled back) for Watch.
	OnEvent func(summary string)
	// Stacks chooses the network stack backend per NIC (nil: every NIC is NetworkManager's).
	Stacks Stacks
	// Runner runs the file-based stacks' commands (netplan, networkctl, systemctl).
	Runner netstack.Runner
	// Addrs reads a NIC's IPv4 addresses, to wait for a lease a file-based stack obtains.
	Addrs AddrReader
	// NMRestartWait is how long to wait for NetworkManager to come back when it went away in the
	// middle of an Apply or a rollback (default DefaultNMRestartWait).
	NMRestartWait time.Duration
	// Udev tells whether udev has initialised a NIC (default UdevDB under Config.Root).
	Udev Udev
	// ManagedWait bounds the wait for NetworkManager to manage a new NIC an Apply targets (default
	// DefaultManagedWait).
	ManagedWait time.Duration
	// Records keeps the pending checkpoint's Record on disk, so that a rollback survives the agent
	// process and a reboot (Resume). nil: in memory only.
	Records RecordStore
}

// Applier executes plans with checkpoints. One checkpoint may be pending at a time.
type Applier struct {
	o   Options
	log *slog.Logger
	// nmb is the NetworkManager backend: every NetworkManager change goes through it (nil: none).
	nmb NMStack

	// op (a one-slot semaphore) serialises Apply, Confirm, Rollback, expiry and Close (an Apply may
	// wait minutes for IPv4); a caller waiting for it gives up with its context. pmu guards the
	// pending field alone, so Pending (GetState) never waits for an Apply.
	op      chan struct{}
	pmu     sync.Mutex
	pending *pending
	// stop is cancelled by Close: a running Apply stops at its next step and rolls back, queued
	// callers give up.
	stop     context.Context
	stopNow  context.CancelFunc
	stopOnce sync.Once
}

// ErrClosing is wrapped when the agent is stopping: an Apply (running or queued) was given up and
// rolled back, or a call came after Close (gRPC Unavailable).
var ErrClosing = errors.New("the agent is stopping")

// lock takes op, or gives up when ctx is done or the Applier closes.
func (a *Applier) lock(ctx context.Context) error {
	if a.stop.Err() != nil {
		return fmt.Errorf("%w: nothing was changed", ErrClosing)
	}
	select {
	case a.op <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("gave up waiting for another Apply, Confirm or Rollback to finish: %w; nothing was changed", context.Cause(ctx))
	case <-a.stop.Done():
		return fmt.Errorf("%w: nothing was changed", ErrClosing)
	}
}

// lockAlways takes op whatever happens: expiry, start-up restore and Close must run.
func (a *Applier) lockAlways() { a.op <- struct{}{} }

func (a *Applier) unlock() { <-a.op }

type pending struct {
	id       string
	nmCP     dbus.ObjectPath
	deadline time.Time
	changes  []*kvmnetv1.Change
	snap     *managedfile.Snapshot
	sysctl   map[string]string // key → old value
	deleted  []nm.Settings     // profiles deleted (settings before)
	updated  map[string]nm.Settings
	timer    *time.Timer

	// The agent's own record for a NetworkManager restart, which loses nmCP (see nmrestart.go).
	nmOwner    string            // NetworkManager process (unique bus name) holding nmCP
	lost       string            // how nmCP was lost ("" while it is not)
	created    []createdProfile  // profiles added
	before     map[string]string // touched interface → uuid of the profile active on it before ("": none)
	hadIPv4    map[string]bool   // touched interface had an IPv4 address before
	incomplete bool              // the Apply did not finish (NetworkManager stopped): only Rollback
	applying   bool              // the Apply is running (or never finished): restore at start-up

	stacks []*stackRecord // file-based stacks whose commands ran (rollback re-runs theirs)
}

// New returns an Applier.
func New(o Options) *Applier {
	l := o.Logger
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	stop, stopNow := context.WithCancel(context.Background())
	a := &Applier{o: o, log: l, op: make(chan struct{}, 1), stop: stop, stopNow: stopNow}
	if o.Stacks != nil {
		if b, ok := o.Stacks.Backend(netstack.NameNetworkManager).(NMStack); ok && b.Client() != nil {
			a.nmb = b
		}
	}
	if a.nmb == nil && o.NM != nil {
		a.nmb = netstack.NewNetworkManager(o.NM, l)
	}
	return a
}

// nmc is the NetworkManager backend's client, nil when there is none.
func (a *Applier) nmc() NM {
	if a.nmb == nil {
		return nil
	}
	return a.nmb.Client()
}

// Gather reads the current state a plan needs.
func (a *Applier) Gather(ctx context.Context, root string) Inputs {
	in := Inputs{Files: map[string][]byte{}, Sysctl: map[string]string{}}
	if a.o.NICs != nil {
		in.NICs, _ = a.o.NICs.NICs()
	}
	if a.nmc() == nil {
		in.NMErr = errors.New("no NetworkManager client configured")
	} else {
		in.NM, in.NMErr = a.nmc().State(ctx)
		links := make([]nm.Link, 0, len(in.NICs))
		for _, n := range in.NICs {
			links = append(links, nm.Link{Name: n.Name, MAC: n.MAC})
		}
		in.NM.Profiles = slices.Clone(in.NM.Profiles)
		nm.MarkMissing(&in.NM, links) // as GetState reports it
	}
	if a.o.Files != nil {
		for _, p := range []string{SysctlFile, AptFile, DnfFile} {
			if b, err := a.o.Files.Read(p); err == nil {
				in.Files[p] = b
			}
		}
		if paths, err := a.o.Files.Managed(); err == nil {
			for _, p := range paths {
				e, ok, err := a.o.Files.Entry(p)
				if err == nil && ok {
					in.Managed = append(in.Managed, ManagedFile{Path: p, Existed: e.Existed})
				}
			}
		}
	}
	if a.o.Sysctl != nil {
		for _, k := range SysctlKeys {
			if v, err := a.o.Sysctl.Get(k); err == nil {
				in.Sysctl[k] = v
			}
		}
	}
	if a.o.Addrs != nil {
		in.NICIPv4 = map[string][]string{}
		for _, n := range in.NICs {
			if v4, err := a.o.Addrs.IPv4(n.Name); err == nil {
				in.NICIPv4[n.Name] = slices.DeleteFunc(v4, func(s string) bool { return strings.HasPrefix(s, "169.254.") })
			}
		}
	}
	if root != "" {
		in.AptInstalled = dirExists(filepath.Join(root, "etc/apt"))
		in.DnfInstalled = dirExists(filepath.Join(root, "etc/dnf"))
	}
	return in
}

func dirExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// Apply validates req, computes the plan from the current state and, unless it is a dry run or
// nothing needs to change, executes it under a checkpoint. A failing step rolls everything back at
// once and the error says what was restored.
func (a *Applier) Apply(ctx context.Context, req *kvmnetv1.ApplyRequest) (*kvmnetv1.ApplyResponse, error) {
	r, err := Validate(req, a.o.Config)
	if err != nil {
		return nil, err
	}
	// While it waits for another call to finish, the caller's cancellation and deadline end it.
	if err := a.lock(ctx); err != nil {
		return nil, err
	}
	defer a.unlock()
	// Once it runs, the caller going away (the host disconnected) does not stop it half-way: it runs
	// to its end and leaves its checkpoint pending. The caller's deadline still bounds it, and Close
	// stops it at its next step (it then rolls back).
	dctx, dcancel := detach(ctx)
	defer dcancel()
	ctx, cancel := context.WithCancelCause(dctx)
	defer cancel(nil)
	defer context.AfterFunc(a.stop, func() { cancel(ErrClosing) })()
	if a.pending != nil && !r.DryRun {
		return nil, fmt.Errorf("%w: checkpoint %s is pending until %s: Confirm or Rollback it first",
			ErrPrecondition, a.pending.id, a.pending.deadline.Format(time.RFC3339))
	}
	root := a.o.Config.Root
	if root == "" {
		root = "/"
	}
	in := a.Gather(ctx, root)
	a.chooseStacks(ctx, r, &in)
	stacks, readFile := in.Stacks, in.ReadFile
	// A NIC hot-plugged seconds ago is unmanaged until udev has initialised it: judged only once
	// NetworkManager has had the chance to take it over (NICs of file-based stacks are not its).
	in, notYet, waited := a.waitManaged(ctx, root, nmOnly(r, stacks), in)
	if len(notYet) > 0 {
		err := errNotYetManaged(notYet, waited)
		a.log.Warn("apply refused", "error", err)
		return nil, err
	}
	in.Stacks, in.ReadFile = stacks, readFile
	plan, err := Compute(r, in)
	if err != nil {
		a.log.Warn("apply refused", "error", err)
		return nil, err
	}
	resp := &kvmnetv1.ApplyResponse{Changes: plan.Changes(), DryRun: r.DryRun, Noop: len(plan.Steps) == 0}
	if r.DryRun || resp.Noop {
		a.log.Info("apply computed", "dry_run", r.DryRun, "noop", resp.Noop, "changes", len(plan.Steps), "notes", strings.Join(plan.Notes, "; "))
		return resp, nil
	}
	p := &pending{id: newID(), changes: resp.Changes, sysctl: map[string]string{}, updated: map[string]nm.Settings{}, applying: true}
	// Every stack step's record up front: the on-disk record saved before the first change must
	// already know which stacks' commands a restore re-runs (harmless for one that never ran).
	p.stacks = plan.stackRecords()
	if plan.NeedsNM() {
		if a.nmb == nil {
			return nil, fmt.Errorf("%w: no NetworkManager client", ErrPrecondition)
		}
		// The NetworkManager process is noted before the checkpoint is made: one that crashes or
		// restarts right after answering CheckpointCreate is then still a different process (noted
		// after, the new one — or none — would pass for the checkpoint's holder, and the restart would
		// go unnoticed). A restart before CheckpointCreate only makes a rollback restore from the
		// agent's record, which is always safe.
		p.nmOwner = a.nmInstance(ctx)
		cp, err := a.nmb.Begin(ctx, plan.MaxWait()+r.RollbackTimeout+NMMargin)
		p.nmCP = dbus.ObjectPath(cp)
		if err != nil {
			return nil, fmt.Errorf("%w: %v; nothing was changed", ErrPrecondition, err)
		}
		p.recordBefore(plan, in.NM)
	}
	if paths := plan.FilePaths(); len(paths) > 0 {
		p.snap, err = a.o.Files.Snapshot(paths...)
		if err != nil {
			a.rollback(context.WithoutCancel(ctx), p)
			return nil, fmt.Errorf("snapshot files before changing them: %w; nothing was changed", err)
		}
	}
	// On disk before the first change: an agent killed from here on is undone by the next one.
	if err := a.save(p); err != nil {
		a.rollback(context.WithoutCancel(ctx), p)
		return nil, fmt.Errorf("%w; nothing was changed", err)
	}
	a.log.Info("apply start", "checkpoint", p.id, "nm_checkpoint", p.nmCP, "steps", len(plan.Steps), "rollback_timeout", r.RollbackTimeout)
	for i, s := range plan.Steps {
		if ctx.Err() != nil {
			return nil, a.abort(ctx, p, i, s, context.Cause(ctx), r.RollbackTimeout)
		}
		err := a.exec(ctx, p, s)
		if err != nil && ctx.Err() != nil && !errors.Is(err, context.Cause(ctx)) {
			err = fmt.Errorf("%w: %w", context.Cause(ctx), err) // why it was cancelled, e.g. ErrClosing
		}
		lost := false
		if s.NM() && err == nil {
			// A restart takes NetworkManager's checkpoint with it, and a step may even have
			// "succeeded" against the new process: the Apply can no longer keep its promise.
			_, lost = a.nmLost(ctx, p)
		}
		if err != nil || lost {
			return nil, a.abort(ctx, p, i, s, err, r.RollbackTimeout)
		}
		a.log.Info("change made", "checkpoint", p.id, "kind", s.Change.Kind, "target", s.Change.Target, "summary", s.Change.Summary)
	}
	if p.nmCP != "" {
		last := len(plan.Steps) - 1
		if err := a.nmb.Rearm(ctx, string(p.nmCP), r.RollbackTimeout+NMMargin); err != nil {
			return nil, a.abort(ctx, p, last, plan.Steps[last], fmt.Errorf("re-arm NetworkManager's checkpoint for the verification window: %w", err), r.RollbackTimeout)
		}
	}
	p.deadline = time.Now().Add(r.RollbackTimeout)
	p.applying = false
	if err := a.save(p); err != nil {
		return nil, a.abort(ctx, p, len(plan.Steps)-1, plan.Steps[len(plan.Steps)-1], err, r.RollbackTimeout)
	}
	id := p.id
	p.timer = time.AfterFunc(r.RollbackTimeout, func() { a.expire(id) })
	a.setPending(p)
	resp.CheckpointId = p.id
	resp.RollbackDeadline = timestamppb.New(p.deadline)
	a.event(fmt.Sprintf("checkpoint %s created: %d change(s), rolls back at %s unless confirmed", p.id, len(p.changes), p.deadline.Format(time.RFC3339)))
	return resp, nil
}

func (a *Applier) exec(ctx context.Context, p *pending, s Step) error {
	switch s.Kind {
	case OpAddProfile:
		uuid := nm.NewUUID()
		p.created = append(p.created, createdProfile{uuid: uuid, id: s.Spec.ID()})
		if err := a.save(p); err != nil {
			return err
		}
		_, err := a.nmc().AddProfile(ctx, s.Spec.NewSettings(uuid))
		return err
	case OpUpdateProfile:
		old, err := a.nmc().Settings(ctx, s.Profile.Path)
		if err != nil {
			return err
		}
		p.updated[s.Profile.UUID] = old
		if err := a.save(p); err != nil {
			return err
		}
		return a.nmc().UpdateProfile(ctx, s.Profile.Path, s.Spec.UpdateSettings(old))
	case OpDeleteProfile:
		old, err := a.nmc().Settings(ctx, s.Profile.Path)
		if err != nil {
			return err
		}
		p.deleted = append(p.deleted, old)
		if err := a.save(p); err != nil {
			return err
		}
		return a.nmc().DeleteProfile(ctx, s.Profile.Path)
	case OpActivate:
		return a.execActivate(ctx, s)
	case OpWriteFile:
		_, err := a.o.Files.Write(s.Path, s.Body, s.Mode)
		return err
	case OpStackApply:
		return a.execStack(ctx, p, s)
	case OpRemoveFile:
		_, err := a.o.Files.Remove(s.Path)
		return err
	case OpRestoreFile:
		_, err := a.o.Files.Restore(s.Path)
		return err
	case OpSetSysctl:
		if a.o.Sysctl == nil {
			return errors.New("no sysctl backend")
		}
		old, err := a.o.Sysctl.Get(s.Key)
		if err != nil {
			return err
		}
		if _, ok := p.sysctl[s.Key]; !ok {
			p.sysctl[s.Key] = old
			if err := a.save(p); err != nil {
				return err
			}
		}
		return a.o.Sysctl.Set(s.Key, s.Value)
	}
	return fmt.Errorf("unknown step kind %d", s.Kind)
}

// execActivate activates kvmnet's profile through the NetworkManager backend (its plan for the
// NIC, with the device and wait the planner chose) and waits for IPv4.
func (a *Applier) execActivate(ctx context.Context, s Step) error {
	sp, err := a.nmb.Plan(netstack.Target{NIC: netstack.NIC{Name: s.Spec.InterfaceName, MAC: strings.ToLower(s.Spec.MAC)}})
	if err != nil {
		return err
	}
	if sp.Activate.Profile != s.Spec.ID() {
		return fmt.Errorf("NetworkManager backend plans profile %s, the planner %s", sp.Activate.Profile, s.Spec.ID())
	}
	sp.Activate.Device, sp.Activate.Fresh, sp.Activate.Wait = string(s.Device.Path), s.Fresh, s.Wait
	start := time.Now()
	ev, err := a.nmb.Apply(ctx, a.o.Runner, sp)
	if err != nil {
		return err
	}
	var addrs []string
	for _, w := range ev {
		if v, ok := strings.CutPrefix(w, netstack.EvidenceIPv4); ok {
			addrs = strings.Split(v, ",")
		}
	}
	a.log.Info("ipv4 obtained", "interface", s.Spec.InterfaceName, "addresses", strings.Join(addrs, ","), "after", time.Since(start))
	s.Change.Summary += fmt.Sprintf(": got %s in %s", strings.Join(addrs, ","), time.Since(start).Round(time.Millisecond))
	return nil
}

// rollback undoes p: NetworkManager's checkpoint, then profiles NetworkManager does not restore by
// itself (deleted or changed profiles that were not active), then sysctls and files. It continues
// past failures. When NetworkManager restarted since the checkpoint was made (the checkpoint is
// gone with it), the profiles are restored from the agent's own record instead (restoreProfiles);
// when NetworkManager is not running, nothing at all is done and the error wraps errNMAbsent, so the
// whole rollback can be tried again later.
func (a *Applier) rollback(ctx context.Context, p *pending) ([]string, error) {
	var restored []string
	var errs []error
	res, err := a.rollbackNM(ctx, p)
	if errors.Is(err, errNMAbsent) {
		a.log.Warn("rollback waits for NetworkManager", "checkpoint", p.id, "why", p.lost, "error", err)
		return nil, err
	}
	restored = append(restored, res...)
	if err != nil {
		errs = append(errs, err)
	}
	for k, v := range p.sysctl {
		if err := a.o.Sysctl.Set(k, v); err != nil {
			errs = append(errs, err)
			continue
		}
		restored = append(restored, fmt.Sprintf("sysctl %s = %s", k, v))
	}
	res, err = a.rollbackStacks(ctx, p, true)
	restored = append(restored, res...)
	if err != nil {
		errs = append(errs, err)
	}
	if p.snap != nil {
		res, err := a.o.Files.RestoreSnapshot(p.snap)
		if err != nil {
			errs = append(errs, err)
		}
		for _, r := range res {
			if r.Changed {
				restored = append(restored, "file "+r.Path)
			}
		}
	}
	res, err = a.rollbackStacks(ctx, p, false)
	restored = append(restored, res...)
	if err != nil {
		errs = append(errs, err)
	}
	a.log.Info("rolled back", "checkpoint", p.id, "restored", strings.Join(restored, "; "), "errors", len(errs))
	// Whatever could not be restored stays as it is now: a record kept for it would only undo the
	// same again at the next start-up, with the same failures.
	a.clear(p)
	return restored, errors.Join(errs...)
}

// rollbackNM undoes p's NetworkManager changes: through its checkpoint while the NetworkManager
// process holding it runs, else (it restarted or stopped, before or during this rollback) from the
// agent's own record, which then decides whatever the checkpoint did or did not do.
func (a *Applier) rollbackNM(ctx context.Context, p *pending) ([]string, error) {
	if p.nmCP == "" {
		return nil, nil
	}
	if _, lost := a.nmLost(ctx, p); !lost {
		restored, err := a.rollbackCheckpoint(ctx, p)
		if _, lost := a.nmLost(ctx, p); !lost {
			return restored, err
		}
	}
	res, err := a.restoreProfiles(ctx, p)
	if errors.Is(err, errNMAbsent) {
		return nil, err
	}
	return append([]string{"NetworkManager's checkpoint " + string(p.nmCP) + " was lost with the NetworkManager process that held it; profiles restored from the agent's own record"}, res...), err
}

// rollbackCheckpoint rolls back NetworkManager's checkpoint, then re-adds or restores the profiles
// it does not restore by itself (deleted or changed profiles that were not active).
func (a *Applier) rollbackCheckpoint(ctx context.Context, p *pending) ([]string, error) {
	var restored []string
	var errs []error
	res, err := a.nmb.Revert(ctx, string(p.nmCP))
	restored = append(restored, res...)
	if err != nil {
		errs = append(errs, err)
	}
	for _, s := range p.deleted {
		uuid, _ := s["connection"]["uuid"].Value().(string)
		id, _ := s["connection"]["id"].Value().(string)
		if _, err := a.nmc().ProfileByUUID(ctx, uuid); err == nil {
			restored = append(restored, "profile "+id+" restored")
			continue
		}
		if _, err := a.nmc().AddProfile(ctx, nm.WritableCopy(s)); err != nil {
			errs = append(errs, fmt.Errorf("re-add deleted profile %s: %w", id, err))
			continue
		}
		restored = append(restored, "profile "+id+" re-added")
	}
	for uuid, s := range p.updated {
		id, _ := s["connection"]["id"].Value().(string)
		path, err := a.nmc().ProfileByUUID(ctx, uuid)
		if err != nil {
			continue
		}
		cur, err := a.nmc().Settings(ctx, path)
		if err == nil && nm.ParseProfile(path, cur).String() == nm.ParseProfile(path, s).String() {
			restored = append(restored, "profile "+id+" restored")
			continue
		}
		if err := a.nmc().UpdateProfile(ctx, path, nm.WritableCopy(s)); err != nil {
			errs = append(errs, fmt.Errorf("restore settings of profile %s: %w", id, err))
			continue
		}
		restored = append(restored, "profile "+id+" settings restored")
	}
	return restored, errors.Join(errs...)
}

// abort ends an Apply whose step i failed (stepErr), or after which NetworkManager turned out to be
// a different process: everything is rolled back at once. When NetworkManager restarted, the error
// names the restart and the restore from the agent's record; when it stopped and is not back within
// NMRestartWait, nothing is restored yet, the checkpoint stays pending (incomplete: only Rollback)
// and the error, wrapping ErrNMGone, tells the user to start NetworkManager.
func (a *Applier) abort(ctx context.Context, p *pending, i int, s Step, stepErr error, rollbackTimeout time.Duration) error {
	start := time.Now()
	restored, err := a.rollback(context.WithoutCancel(ctx), p)
	if p.lost == "" {
		msg := fmt.Sprintf("step %d (%s) failed: %v; rolled back at once: %s", i+1, s.Change.Summary, stepErr, strings.Join(restored, "; "))
		if err != nil {
			msg += "; rollback problems: " + err.Error()
		}
		a.log.Error("apply failed", "checkpoint", p.id, "error", msg)
		return fmt.Errorf("%w: %s", ErrRolledBack, msg)
	}
	at := fmt.Sprintf("step %d (%s)", i+1, s.Change.Summary)
	if stepErr != nil && !errors.Is(stepErr, nm.ErrNotRunning) {
		at += " failed: " + stepErr.Error()
	}
	if errors.Is(err, errNMAbsent) {
		p.incomplete = true
		p.changes = append([]*kvmnetv1.Change{{Kind: "checkpoint", Target: p.id,
			Summary: fmt.Sprintf("Apply did not complete: %s at %s; only Rollback is accepted, once NetworkManager runs", p.lost, at)}}, p.changes...)
		p.deadline = time.Now().Add(rollbackTimeout)
		a.saveLogged(p)
		id := p.id
		p.timer = time.AfterFunc(rollbackTimeout, func() { a.expire(id) })
		a.setPending(p)
		msg := fmt.Sprintf("%s during Apply, at %s, and is not back after %s: start it (`systemctl start NetworkManager`). Nothing was restored yet: checkpoint %s stays pending with the agent's record of every change; once NetworkManager runs, Rollback %s restores the previous profiles, and the agent does so by itself at %s",
			p.lost, at, time.Since(start).Round(100*time.Millisecond), p.id, p.id, p.deadline.Format(time.RFC3339))
		a.log.Error("apply interrupted", "checkpoint", p.id, "error", msg)
		a.event("checkpoint " + p.id + ": " + msg)
		return fmt.Errorf("%w: %s", ErrNMGone, msg)
	}
	why := p.lost
	if why == "NetworkManager stopped" {
		why = fmt.Sprintf("NetworkManager restarted (it stopped and was back within %s)", time.Since(start).Round(100*time.Millisecond))
	}
	msg := fmt.Sprintf("%s during Apply, at %s; the previous configuration was restored: %s", why, at, strings.Join(restored, "; "))
	if err != nil {
		msg += "; rollback problems: " + err.Error()
	}
	a.log.Error("apply failed", "checkpoint", p.id, "error", msg)
	return fmt.Errorf("%w: %s", ErrRolledBack, msg)
}

func (a *Applier) expire(id string) {
	a.lockAlways()
	defer a.unlock()
	if a.pending == nil || a.pending.id != id {
		return
	}
	p := a.pending
	a.setPending(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	restored, err := a.rollback(ctx, p)
	if errors.Is(err, errNMAbsent) {
		p.deadline = time.Now().Add(RestoreRetry)
		a.saveLogged(p)
		p.timer = time.AfterFunc(RestoreRetry, func() { a.expire(id) })
		a.setPending(p)
		msg := fmt.Sprintf("checkpoint %s not confirmed in time, but NetworkManager is not running: start it (`systemctl start NetworkManager`); the agent tries again at %s (%v)",
			id, p.deadline.Format(time.RFC3339), err)
		a.log.Error("rollback postponed", "checkpoint", id, "error", msg)
		a.event(msg)
		return
	}
	a.log.Warn("checkpoint not confirmed in time: rolled back", "checkpoint", id, "restored", strings.Join(restored, "; "), "error", err)
	a.event(fmt.Sprintf("checkpoint %s not confirmed in time: rolled back (%s)", id, strings.Join(restored, "; ")))
}

// ErrRolledBack is wrapped when a step failed and everything was rolled back at once (gRPC
// Aborted).
var ErrRolledBack = errors.New("apply failed and was rolled back")

// ErrNoCheckpoint is wrapped when Confirm or Rollback names no pending checkpoint (gRPC NotFound).
var ErrNoCheckpoint = errors.New("no such pending checkpoint")

func (a *Applier) take(id string) (*pending, error) {
	if a.pending == nil {
		return nil, fmt.Errorf("%w: %q (none is pending: it may have rolled back by itself already)", ErrNoCheckpoint, id)
	}
	if a.pending.id != id {
		return nil, fmt.Errorf("%w: %q (pending: %s)", ErrNoCheckpoint, id, a.pending.id)
	}
	p := a.pending
	if !p.timer.Stop() {
		return nil, fmt.Errorf("%w: %q is rolling back by itself (deadline passed)", ErrNoCheckpoint, id)
	}
	a.setPending(nil)
	return p, nil
}

// Confirm keeps the changes of the pending checkpoint id and destroys it.
func (a *Applier) Confirm(ctx context.Context, id string) error {
	if err := a.lock(ctx); err != nil {
		return err
	}
	defer a.unlock()
	p, err := a.take(id)
	if err != nil {
		return err
	}
	if p.incomplete {
		a.repend(p)
		return fmt.Errorf("%w: checkpoint %s belongs to an Apply that did not complete (%s); it can only be rolled back: start NetworkManager, then Rollback %s (or wait until %s)",
			ErrPrecondition, id, p.lost, id, p.deadline.Format(time.RFC3339))
	}
	if why, lost := a.nmLost(ctx, p); lost {
		// Nothing to destroy: the checkpoint died with the old NetworkManager. The changes stay,
		// saved in its profiles on disk.
		a.clear(p)
		a.log.Info("checkpoint confirmed", "checkpoint", id, "changes", len(p.changes), "note", why+"; its checkpoint went with it, nothing to destroy")
		a.event("checkpoint " + id + " confirmed (" + why + " since the Apply; the changes are kept in its saved profiles)")
		return nil
	}
	if p.nmCP != "" {
		if err := a.nmb.Commit(ctx, string(p.nmCP)); err != nil {
			// Keep it pending: NetworkManager would still roll back by itself.
			a.repend(p)
			return fmt.Errorf("confirm %s: %w", id, err)
		}
	}
	a.clear(p)
	a.log.Info("checkpoint confirmed", "checkpoint", id, "changes", len(p.changes))
	a.event("checkpoint " + id + " confirmed")
	return nil
}

// Rollback undoes the pending checkpoint id at once.
func (a *Applier) Rollback(ctx context.Context, id string) ([]string, error) {
	if err := a.lock(ctx); err != nil {
		return nil, err
	}
	defer a.unlock()
	return a.rollbackTaken(ctx, id)
}

func (a *Applier) rollbackTaken(ctx context.Context, id string) ([]string, error) {
	p, err := a.take(id)
	if err != nil {
		return nil, err
	}
	restored, err := a.rollback(ctx, p)
	if errors.Is(err, errNMAbsent) {
		a.repend(p)
		return nil, fmt.Errorf("%w: rollback of %s: %v; start it (`systemctl start NetworkManager`) and call Rollback again; the checkpoint stays pending until %s",
			ErrNMGone, id, err, p.deadline.Format(time.RFC3339))
	}
	a.event(fmt.Sprintf("checkpoint %s rolled back on request", id))
	return restored, err
}

// Pending returns the pending checkpoint, or nil.
func (a *Applier) Pending() *kvmnetv1.Checkpoint {
	a.pmu.Lock()
	defer a.pmu.Unlock()
	if a.pending == nil {
		return nil
	}
	return &kvmnetv1.Checkpoint{Id: a.pending.id, RollbackDeadline: timestamppb.New(a.pending.deadline), Changes: a.pending.changes}
}

// Close rolls back what is pending (the agent is stopping and cannot wait for Confirm): a running
// Apply is stopped at its next step and rolls back its steps before Close returns; a pending
// checkpoint is rolled back. Later calls are refused with ErrClosing.
func (a *Applier) Close() error {
	a.stopOnce.Do(a.stopNow)
	a.lockAlways()
	defer a.unlock()
	a.pmu.Lock()
	p := a.pending
	a.pmu.Unlock()
	if p == nil {
		return nil
	}
	_, err := a.rollbackTaken(context.Background(), p.id)
	return err
}

// repend makes p (taken with take) pending again until its deadline.
func (a *Applier) repend(p *pending) {
	a.setPending(p)
	p.timer.Reset(time.Until(p.deadline))
}

func (a *Applier) setPending(p *pending) {
	a.pmu.Lock()
	a.pending = p
	a.pmu.Unlock()
}

// save writes p's Record (no-op without Options.Records).
func (a *Applier) save(p *pending) error {
	if a.o.Records == nil {
		return nil
	}
	r, err := p.record(a.bootID())
	if err == nil {
		err = a.o.Records.Save(r)
	}
	if err != nil {
		return fmt.Errorf("keep the rollback record of checkpoint %s on disk: %w", p.id, err)
	}
	return nil
}

// saveLogged is save where the change it records (a new deadline) happens anyway.
func (a *Applier) saveLogged(p *pending) {
	if err := a.save(p); err != nil {
		a.log.Error("rollback record not updated", "checkpoint", p.id, "error", err)
	}
}

// clear removes the Record of p, which needs no undoing any more.
func (a *Applier) clear(p *pending) {
	if a.o.Records == nil {
		return
	}
	if err := a.o.Records.Clear(); err != nil {
		a.log.Error("rollback record not removed: the next start-up would undo checkpoint "+p.id+" again", "error", err)
	}
}

// bootID identifies the current boot ("" when it cannot be read).
func (a *Applier) bootID() string {
	if a.o.Sysctl == nil {
		return ""
	}
	id, err := a.o.Sysctl.Get(BootIDKey)
	if err != nil {
		return ""
	}
	return id
}

// Resume takes over the checkpoint a previous agent process left pending (its Record). It restores
// at once when that checkpoint's Apply never finished, when its deadline passed, or when the guest
// rebooted since (NetworkManager's checkpoint is gone then, so profiles are restored from the
// record); otherwise the checkpoint is pending again until its deadline, so the host's Confirm still
// works. It returns what it restored. When NetworkManager is not running yet, the restore is retried
// every RestoreRetry like an expired checkpoint's.
func (a *Applier) Resume(ctx context.Context) ([]string, error) {
	if a.o.Records == nil {
		return nil, nil
	}
	r, err := a.o.Records.Load()
	if err != nil || r == nil {
		return nil, err
	}
	p, err := pendingFrom(r)
	if err != nil {
		return nil, err
	}
	a.lockAlways()
	defer a.unlock()
	boot := a.bootID()
	why := ""
	switch {
	case r.Applying:
		why = "its Apply never finished (the agent stopped in the middle of it)"
	case r.BootID != boot:
		why = "the guest rebooted since (boot id " + r.BootID + ", now " + boot + ")"
		if p.nmCP != "" {
			p.lost = "the guest rebooted"
		}
	case !time.Now().Before(r.Deadline):
		why = "its deadline " + r.Deadline.Format(time.RFC3339) + " passed while no agent ran"
	}
	id := p.id
	if why == "" {
		p.timer = time.AfterFunc(time.Until(p.deadline), func() { a.expire(id) })
		a.setPending(p)
		a.log.Info("pending checkpoint taken over from the previous agent process", "checkpoint", id, "deadline", p.deadline)
		return nil, nil
	}
	a.log.Warn("restoring a checkpoint left by the previous agent process", "checkpoint", id, "why", why)
	restored, err := a.rollback(ctx, p)
	if errors.Is(err, errNMAbsent) {
		p.deadline = time.Now().Add(RestoreRetry)
		p.incomplete = true // only Rollback, and at a restart a restore at once (applying stays true)
		p.applying = true
		a.saveLogged(p)
		p.timer = time.AfterFunc(RestoreRetry, func() { a.expire(id) })
		a.setPending(p)
		return nil, fmt.Errorf("%w: checkpoint %s left by the previous agent process (%s) waits for NetworkManager: start it; retried at %s (%v)",
			ErrNMGone, id, why, p.deadline.Format(time.RFC3339), err)
	}
	a.event(fmt.Sprintf("checkpoint %s left by the previous agent process rolled back: %s (%s)", id, why, strings.Join(restored, "; ")))
	return restored, err
}

func (a *Applier) event(s string) {
	if a.o.OnEvent != nil {
		a.o.OnEvent(s)
	}
}

// detach returns a context that keeps ctx's values and deadline but not its cancellation.
func detach(ctx context.Context) (context.Context, context.CancelFunc) {
	d := context.WithoutCancel(ctx)
	if dl, ok := ctx.Deadline(); ok {
		return context.WithDeadline(d, dl)
	}
	return context.WithCancel(d)
}

func newID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "kvmnet-" + hex.EncodeToString(b)
}
