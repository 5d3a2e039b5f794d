package apply

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/kvmnet/kvmnet/agent/netstack"
	"github.com/kvmnet/kvmnet/agent/nm"
)

// NMRestarts is implemented by NetworkManager clients that can tell one NetworkManager process
// from the next (*nm.Client does, by the unique bus name owning NetworkManager's name). With it the
// Applier notices a NetworkManager restart (through the backend's Checkpointer.Instance) — which
// loses NetworkManager's checkpoint, kept in its memory only — and restores from its own record
// instead, deactivating what it must. Without it a restart goes unnoticed.
type NMRestarts interface {
	netstack.NMInstances
	// Deactivate deactivates an active connection.
	Deactivate(ctx context.Context, ac dbus.ObjectPath) error
}

// DefaultNMRestartWait is how long the Applier waits for NetworkManager to come back when it went
// away in the middle of an Apply or a rollback (Options.NMRestartWait). `systemctl restart
// NetworkManager` takes well under that (0.4 s measured in the lab).
const DefaultNMRestartWait = 10 * time.Second

// RestoreRetry is how often a rollback that waits for a stopped NetworkManager is tried again.
const RestoreRetry = 30 * time.Second

// ErrNMGone is wrapped when NetworkManager stopped in the middle of an Apply or a rollback and did
// not come back in time: nothing could be restored yet, the checkpoint stays pending, and the error
// says to start NetworkManager (gRPC Unavailable).
var ErrNMGone = errors.New("NetworkManager went away")

// errNMAbsent marks a restore that could not start because NetworkManager is not running.
var errNMAbsent = errors.New("NetworkManager is not running")

// createdProfile is a profile an Apply added, by uuid (object paths change when NetworkManager
// restarts).
type createdProfile struct{ uuid, id string }

// recordBefore keeps, for every interface the plan touches, which profile was active on it and
// whether it had an IPv4 address: what a restore without NetworkManager's checkpoint goes back to.
func (p *pending) recordBefore(plan *Plan, st nm.State) {
	p.before, p.hadIPv4 = map[string]string{}, map[string]bool{}
	touch := func(iface string) {
		if iface == "" {
			return
		}
		if _, ok := p.before[iface]; ok {
			return
		}
		p.before[iface] = ""
		for _, pr := range st.Profiles {
			if pr.Active && pr.ActiveDevice == iface {
				p.before[iface] = pr.UUID
			}
		}
		for _, d := range st.Devices {
			if d.Interface == iface {
				p.hadIPv4[iface] = len(d.IPv4) > 0
			}
		}
	}
	for _, s := range plan.Steps {
		switch s.Kind {
		case OpActivate:
			touch(s.Spec.InterfaceName)
		case OpDeleteProfile, OpUpdateProfile:
			if s.Profile.Active {
				touch(s.Profile.ActiveDevice)
			}
		}
	}
}

// nmInstance returns the running NetworkManager's id ("" when the backend cannot tell or the call
// failed).
func (a *Applier) nmInstance(ctx context.Context) string {
	if a.nmb == nil {
		return ""
	}
	id, err := a.nmb.Instance(ctx)
	if err != nil {
		return ""
	}
	return id
}

// nmLost reports whether the NetworkManager holding p's checkpoint is gone (stopped, or replaced by
// a new process), and how. Once lost, always lost.
func (a *Applier) nmLost(ctx context.Context, p *pending) (string, bool) {
	if p.lost != "" {
		return p.lost, true
	}
	if a.nmb == nil || p.nmCP == "" || p.nmOwner == "" {
		return "", false
	}
	cur, err := a.nmb.Instance(ctx)
	switch {
	case errors.Is(err, nm.ErrNotRunning):
		p.lost = "NetworkManager stopped"
	case err != nil:
		return "", false // the bus itself is in trouble: the checkpoint calls will say so
	case cur != p.nmOwner:
		p.lost = fmt.Sprintf("NetworkManager restarted (bus name %s, now %s)", p.nmOwner, cur)
	default:
		return "", false
	}
	a.log.Warn("NetworkManager checkpoint lost", "checkpoint", p.id, "nm_checkpoint", p.nmCP, "why", p.lost)
	return p.lost, true
}

// waitNM waits up to Options.NMRestartWait (and ctx's deadline) until NetworkManager answers with
// its full state and knows every interface p touches.
func (a *Applier) waitNM(ctx context.Context, p *pending) (nm.State, error) {
	wait := a.o.NMRestartWait
	if wait <= 0 {
		wait = DefaultNMRestartWait
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var last error
	for {
		st, err := a.nmc().State(ctx)
		if err == nil {
			missing := ""
			for iface := range p.before {
				if _, ok := deviceByName(st, iface); !ok {
					missing = iface
				}
			}
			if missing == "" {
				return st, nil
			}
			err = fmt.Errorf("NetworkManager runs but does not know %s yet", missing)
		}
		last = err
		select {
		case <-ctx.Done():
			return nm.State{}, fmt.Errorf("%w: not back after %s (%v)", errNMAbsent, wait, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func deviceByName(st nm.State, iface string) (nm.Device, bool) {
	for _, d := range st.Devices {
		if d.Interface == iface {
			return d, true
		}
	}
	return nm.Device{}, false
}

func profileByUUID(st nm.State, uuid string) (nm.Profile, bool) {
	for _, pr := range st.Profiles {
		if pr.UUID == uuid {
			return pr, true
		}
	}
	return nm.Profile{}, false
}

// restoreProfiles does by hand what NetworkManager's lost checkpoint would have done, from the
// agent's own record: it waits for NetworkManager, deletes the profiles the Apply created, re-adds
// the ones it deleted, puts back the settings it changed, and re-activates on every touched
// interface the profile that was active there before (or deactivates it when none was). Every
// lookup is by uuid and interface name: object paths do not survive a restart. It continues past
// failures; errNMAbsent (wrapped) means it could not start.
func (a *Applier) restoreProfiles(ctx context.Context, p *pending) ([]string, error) {
	st, err := a.waitNM(ctx, p)
	if err != nil {
		return nil, err
	}
	ctx = context.WithoutCancel(ctx)
	var restored []string
	var errs []error
	for _, c := range p.created {
		pr, ok := profileByUUID(st, c.uuid)
		if !ok {
			continue
		}
		if err := a.nmc().DeleteProfile(ctx, pr.Path); err != nil {
			errs = append(errs, fmt.Errorf("delete profile %s created by the Apply: %w", c.id, err))
			continue
		}
		restored = append(restored, "profile "+c.id+" (created by the Apply) deleted")
	}
	for _, s := range p.deleted {
		uuid, _ := s["connection"]["uuid"].Value().(string)
		id, _ := s["connection"]["id"].Value().(string)
		if _, ok := profileByUUID(st, uuid); ok {
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
		pr, ok := profileByUUID(st, uuid)
		if !ok {
			continue
		}
		if pr.String() == nm.ParseProfile(pr.Path, s).String() {
			continue
		}
		if err := a.nmc().UpdateProfile(ctx, pr.Path, nm.WritableCopy(s)); err != nil {
			errs = append(errs, fmt.Errorf("restore settings of profile %s: %w", id, err))
			continue
		}
		restored = append(restored, "profile "+id+" settings restored")
	}
	if st, err = a.nmc().State(ctx); err != nil {
		errs = append(errs, fmt.Errorf("read NetworkManager to re-activate profiles: %w", err))
		return restored, errors.Join(errs...)
	}
	for iface, want := range p.before {
		msg, err := a.reactivate(ctx, st, iface, want, p.hadIPv4[iface])
		if err != nil {
			errs = append(errs, err)
		}
		if msg != "" {
			restored = append(restored, msg)
		}
	}
	return restored, errors.Join(errs...)
}

// reactivate puts the profile with uuid want back on iface (want "": nothing active there).
func (a *Applier) reactivate(ctx context.Context, st nm.State, iface, want string, waitIPv4 bool) (string, error) {
	dev, ok := deviceByName(st, iface)
	if !ok {
		return "", fmt.Errorf("re-activate on %s: NetworkManager has no such device", iface)
	}
	cur := ""
	for _, pr := range st.Profiles {
		if pr.Active && pr.ActiveDevice == iface {
			cur = pr.UUID
		}
	}
	if cur == want {
		if want == "" || !waitIPv4 {
			return "", nil
		}
		// Back already (NetworkManager autoconnected it): wait until it is up again, as before.
		pr, _ := profileByUUID(st, want)
		addrs, err := a.nmc().WaitIPv4(ctx, dev.Path, dev.ActiveConnection, 15*time.Second)
		if err != nil {
			return "", fmt.Errorf("profile %s on %s: %w", pr.ID, iface, err)
		}
		return fmt.Sprintf("profile %s active again on %s (%s)", pr.ID, iface, strings.Join(addrs, ",")), nil
	}
	if want == "" {
		r, ok := a.nmc().(NMRestarts)
		if !ok || dev.ActiveConnection == "" || dev.ActiveConnection == "/" {
			return "", nil
		}
		if err := r.Deactivate(ctx, dev.ActiveConnection); err != nil {
			return "", fmt.Errorf("deactivate %s (nothing was active on it before): %w", iface, err)
		}
		return iface + " deactivated (nothing was active on it before)", nil
	}
	pr, ok := profileByUUID(st, want)
	if !ok {
		return "", fmt.Errorf("re-activate profile uuid=%s on %s: it is not there", want, iface)
	}
	ac, err := a.nmc().Activate(ctx, pr.Path, dev.Path)
	if err != nil {
		return "", fmt.Errorf("re-activate profile %s on %s: %w", pr.ID, iface, err)
	}
	if !waitIPv4 {
		return "profile " + pr.ID + " re-activated on " + iface, nil
	}
	addrs, err := a.nmc().WaitIPv4(ctx, dev.Path, ac, 15*time.Second)
	if err != nil {
		return "profile " + pr.ID + " re-activated on " + iface, fmt.Errorf("profile %s on %s: %w", pr.ID, iface, err)
	}
	return fmt.Sprintf("profile %s re-activated on %s (%s)", pr.ID, iface, strings.Join(addrs, ",")), nil
}
