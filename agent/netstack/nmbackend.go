package netstack

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"time"

	gonm "github.com/Wifx/gonetworkmanager/v2"
	"github.com/godbus/dbus/v5"
	"github.com/kvmnet/kvmnet/agent/nm"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// NMClient is what the NetworkManager backend needs of NetworkManager; agent/nm's *Client
// satisfies it (over D-Bus, each call bounded).
type NMClient interface {
	State(ctx context.Context) (nm.State, error)
	Settings(ctx context.Context, path dbus.ObjectPath) (nm.Settings, error)
	AddProfile(ctx context.Context, s nm.Settings) (dbus.ObjectPath, error)
	UpdateProfile(ctx context.Context, path dbus.ObjectPath, s nm.Settings) error
	DeleteProfile(ctx context.Context, path dbus.ObjectPath) error
	ProfileByUUID(ctx context.Context, uuid string) (dbus.ObjectPath, error)
	Activate(ctx context.Context, conn, dev dbus.ObjectPath) (dbus.ObjectPath, error)
	WaitIPv4(ctx context.Context, dev, ac dbus.ObjectPath, timeout time.Duration) ([]string, error)
	CheckpointCreate(ctx context.Context, devices []dbus.ObjectPath, rollbackTimeout time.Duration, flags gonm.NmCheckpointCreateFlags) (dbus.ObjectPath, error)
	CheckpointDestroy(ctx context.Context, cp dbus.ObjectPath) error
	CheckpointRollback(ctx context.Context, cp dbus.ObjectPath) (map[string]uint32, error)
	CheckpointAdjust(ctx context.Context, cp dbus.ObjectPath, timeout time.Duration) error
}

// NMInstances is implemented by NetworkManager clients that can tell one NetworkManager process
// from the next (*nm.Client does, by the unique bus name owning NetworkManager's name).
type NMInstances interface {
	// Instance identifies the running NetworkManager process; none running is an error wrapping
	// nm.ErrNotRunning.
	Instance(ctx context.Context) (string, error)
}

// Checkpointer is implemented by a Backend whose stack keeps its own rollback point (NetworkManager's
// checkpoint, in its memory). The caller makes it before the first change (Begin, with a timeout
// covering the steps), re-arms it once the steps are done for the host's verification window
// (Rearm), destroys it on confirm (Commit) and rolls back to it otherwise (Revert). Its own timer
// is the fallback when the agent is gone; the agent's record covers the stack restarting.
type Checkpointer interface {
	// Instance identifies the stack's running process ("" with a nil error when it cannot tell);
	// a checkpoint lives only as long as the process that made it.
	Instance(ctx context.Context) (string, error)
	// Begin makes a checkpoint of every device that rolls back by itself after timeout.
	Begin(ctx context.Context, timeout time.Duration) (string, error)
	// Rearm sets the checkpoint's own rollback to timeout from now.
	Rearm(ctx context.Context, id string, timeout time.Duration) error
	// Commit keeps the changes and destroys the checkpoint.
	Commit(ctx context.Context, id string) error
	// Revert rolls back to the checkpoint and says what it restored; a checkpoint the stack already
	// rolled back by itself is not an error.
	Revert(ctx context.Context, id string) ([]string, error)
}

// Activation is NetworkManager's part of a Plan: the profile Apply activates on the NIC.
type Activation struct {
	// Profile id (kvm-dhcp-<ifname>).
	Profile string `json:"profile"`
	// Device is NetworkManager's device object path.
	Device string `json:"device"`
	// Fresh is true when the profile was just created: if NetworkManager already autoconnected it,
	// Apply waits for that activation instead of restarting it.
	Fresh bool `json:"fresh,omitempty"`
	// Wait bounds the wait for an IPv4 address.
	Wait time.Duration `json:"wait"`
}

// EvidenceIPv4 starts the evidence word in which a backend's Apply reports the IPv4 addresses the
// NIC got ("ipv4=10.0.0.5/24,10.0.0.6/24").
const EvidenceIPv4 = "ipv4="

// NetworkManager is the Backend for NICs NetworkManager manages. It writes no files: its changes are
// NetworkManager profiles made over D-Bus (agent/apply plans them from NetworkManager's state, which
// its Client reads), under a NetworkManager checkpoint (Checkpointer). Apply activates kvmnet's
// profile on the NIC and waits for IPv4.
type NetworkManager struct {
	c   NMClient
	log *slog.Logger
}

var (
	_ Backend      = (*NetworkManager)(nil)
	_ Checkpointer = (*NetworkManager)(nil)
)

// NewNetworkManager returns the NetworkManager backend over c (nil: every call fails with a clear
// error). log gets one line per activation (nil: discard).
func NewNetworkManager(c NMClient, log *slog.Logger) *NetworkManager {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &NetworkManager{c: c, log: log}
}

// Client is the NetworkManager client the backend was built with (nil when none).
func (b *NetworkManager) Client() NMClient { return b.c }

// Name implements Backend.
func (b *NetworkManager) Name() string { return NameNetworkManager }

// Stack implements Backend.
func (b *NetworkManager) Stack() kvmnetv1.NetworkStack {
	return kvmnetv1.NetworkStack_NETWORK_STACK_NETWORK_MANAGER
}

// IsManaging implements Backend: NetworkManager manages the NIC when it (or netplan handing the NIC
// to it) claims it. The Chooser also falls back to it when no file-based stack would configure the
// NIC, as before file-based backends existed.
func (b *NetworkManager) IsManaging(d Detection) (bool, string) {
	if d.Claimed(NameNetworkManager) {
		return true, "networkmanager_claims=" + d.NIC.Name
	}
	return false, fmt.Sprintf("networkmanager_claims=no networkmanager_running=%t", d.NMRunning)
}

// Plan implements Backend: kvmnet's profile for the NIC, activated by Apply (the profile's settings
// are planned by agent/apply from NetworkManager's state). It changes nothing.
func (b *NetworkManager) Plan(t Target) (*Plan, error) {
	if b.c == nil {
		return nil, fmt.Errorf("no NetworkManager client configured")
	}
	id := nm.ProfilePrefix + t.NIC.Name
	return &Plan{
		Stack: b.Stack(), Backend: b.Name(), NIC: t.NIC,
		Activate: &Activation{Profile: id},
		Evidence: []string{"stack=" + NameNetworkManager, "profile=" + id},
	}, nil
}

// Apply implements Backend: it activates p's profile on its device (or waits for the activation
// NetworkManager started by itself for a fresh profile) and waits for IPv4. The evidence holds the
// addresses (EvidenceIPv4). r is not used: NetworkManager is driven over D-Bus.
func (b *NetworkManager) Apply(ctx context.Context, _ Runner, p *Plan) ([]string, error) {
	if b.c == nil {
		return nil, fmt.Errorf("no NetworkManager client configured")
	}
	if p == nil || p.Activate == nil {
		return nil, nil
	}
	a := p.Activate
	st, err := b.c.State(ctx)
	if err != nil {
		return nil, err
	}
	prof, ok := st.ProfileByID(a.Profile)
	if !ok {
		return nil, fmt.Errorf("profile %s vanished before activation", a.Profile)
	}
	dev := dbus.ObjectPath(a.Device)
	var ac dbus.ObjectPath
	if a.Fresh && prof.Active && prof.ActiveDevice == p.NIC.Name {
		// NetworkManager autoconnected the new profile already: wait for that activation.
		for _, d := range st.Devices {
			if d.Path == dev {
				ac = d.ActiveConnection
			}
		}
		b.log.Info("profile autoconnected; waiting for it", "profile", prof.ID, "active", ac)
	} else {
		ac, err = b.c.Activate(ctx, prof.Path, dev)
		if err != nil {
			return nil, err
		}
	}
	addrs, err := b.c.WaitIPv4(ctx, dev, ac, a.Wait)
	if err != nil {
		return nil, err
	}
	return []string{EvidenceIPv4 + strings.Join(addrs, ",")}, nil
}

// Rollback implements Backend: nothing to run per NIC, NetworkManager's checkpoint (Revert) restores
// the profiles and devices.
func (b *NetworkManager) Rollback(context.Context, Runner, *Plan, bool) ([]string, error) {
	return nil, nil
}

// Instance implements Checkpointer: NetworkManager's unique bus name, "" when the client cannot
// tell (then a restart goes unnoticed).
func (b *NetworkManager) Instance(ctx context.Context) (string, error) {
	r, ok := b.c.(NMInstances)
	if !ok {
		return "", nil
	}
	return r.Instance(ctx)
}

// Begin implements Checkpointer with nm.CheckpointFlags (a leftover checkpoint is replaced,
// profiles added after it deleted on rollback).
func (b *NetworkManager) Begin(ctx context.Context, timeout time.Duration) (string, error) {
	if b.c == nil {
		return "", fmt.Errorf("no NetworkManager client configured")
	}
	cp, err := b.c.CheckpointCreate(ctx, nil, timeout, nm.CheckpointFlags)
	return string(cp), err
}

// Rearm implements Checkpointer.
func (b *NetworkManager) Rearm(ctx context.Context, id string, timeout time.Duration) error {
	return b.c.CheckpointAdjust(ctx, dbus.ObjectPath(id), timeout)
}

// Commit implements Checkpointer.
func (b *NetworkManager) Commit(ctx context.Context, id string) error {
	return b.c.CheckpointDestroy(ctx, dbus.ObjectPath(id))
}

// Revert implements Checkpointer.
func (b *NetworkManager) Revert(ctx context.Context, id string) ([]string, error) {
	res, err := b.c.CheckpointRollback(ctx, dbus.ObjectPath(id))
	switch {
	case err != nil && strings.Contains(err.Error(), "does not exist"):
		return []string{"NetworkManager had already rolled back checkpoint " + id}, nil
	case err != nil:
		return nil, err
	}
	devs := make([]string, 0, len(res))
	for d, r := range res {
		devs = append(devs, fmt.Sprintf("%s=%d", filepath.Base(d), r))
	}
	slices.Sort(devs)
	return []string{"NetworkManager checkpoint rolled back (devices " + strings.Join(devs, " ") + ")"}, nil
}
