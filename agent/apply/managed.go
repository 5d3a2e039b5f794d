package apply

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kvmnet/kvmnet/agent/nm"
)

// DefaultManagedWait bounds how long an Apply waits for NetworkManager to take over a NIC it does
// not manage yet because the NIC is new (Options.ManagedWait). A hot-plugged NIC appeared in ~8 s
// in the lab, and NetworkManager manages it only once udev has initialised it.
const DefaultManagedWait = 30 * time.Second

// Udev tells whether udev has initialised a network interface. NetworkManager leaves a device
// "unmanaged" until then, so an unmanaged device that udev has not seen yet is not yet judged.
type Udev interface {
	// Pending reports whether udev runs and has not initialised ifname yet.
	Pending(ifname string) bool
}

// UdevDB reads udev's database under Root: udev runs when run/udev/control exists, and it has
// initialised interface N once run/udev/data/n<ifindex> exists (what libudev's is_initialized
// checks). Without udev (containers, the test namespaces) nothing is ever pending.
type UdevDB struct {
	// Root is the filesystem root ("/" in production).
	Root string
}

// Pending implements Udev.
func (u UdevDB) Pending(ifname string) bool {
	if _, err := os.Stat(filepath.Join(u.Root, "run/udev/control")); err != nil {
		return false
	}
	b, err := os.ReadFile(filepath.Join(u.Root, "sys/class/net", filepath.Base(ifname), "ifindex"))
	if err != nil {
		return false
	}
	_, err = os.Stat(filepath.Join(u.Root, "run/udev/data", "n"+strings.TrimSpace(string(b))))
	return errors.Is(err, fs.ErrNotExist)
}

// notYetManaged returns the NICs among macs whose NetworkManager device is missing, or unmanaged
// while udev has not initialised it: new NICs NetworkManager will take over in a moment.
func (a *Applier) notYetManaged(st nm.State, nics []NIC, macs []string) []string {
	var out []string
	for _, mac := range macs {
		name := ""
		for _, n := range nics {
			if strings.EqualFold(n.MAC, mac) {
				name = n.Name
			}
		}
		if name == "" {
			continue // not in the kernel either: the plan says so
		}
		dev, ok := st.DeviceByMAC(mac)
		if !ok || (!dev.Managed && a.udev().Pending(name)) {
			out = append(out, name)
		}
	}
	return out
}

func (a *Applier) udev() Udev {
	if a.o.Udev != nil {
		return a.o.Udev
	}
	return UdevDB{Root: a.o.Config.Root}
}

// waitManaged waits, up to Options.ManagedWait and ctx, until NetworkManager manages every NIC an
// ensure action of r targets that is new to it (notYetManaged). It returns the inputs read last
// and the NICs still not managed (with how long it waited), for the plan to say so.
func (a *Applier) waitManaged(ctx context.Context, root string, r Request, in Inputs) (Inputs, []string, time.Duration) {
	var macs []string
	for _, act := range r.Actions {
		if act.Ensure != nil {
			macs = append(macs, act.Ensure.MAC)
		}
	}
	if len(macs) == 0 || in.NMErr != nil {
		return in, nil, 0
	}
	wait := a.o.ManagedWait
	if wait <= 0 {
		wait = DefaultManagedWait
	}
	start := time.Now()
	pending := a.notYetManaged(in.NM, in.NICs, macs)
	if len(pending) == 0 {
		return in, nil, 0
	}
	a.log.Info("waiting for NetworkManager to manage new NICs", "interfaces", strings.Join(pending, ","), "at_most", wait)
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for len(pending) > 0 {
		select {
		case <-ctx.Done():
			return in, pending, time.Since(start)
		case <-time.After(250 * time.Millisecond):
		}
		in = a.Gather(ctx, root)
		if in.NMErr != nil {
			return in, nil, time.Since(start)
		}
		pending = a.notYetManaged(in.NM, in.NICs, macs)
	}
	a.log.Info("NetworkManager manages the new NICs", "after", time.Since(start).Round(time.Millisecond))
	return in, nil, time.Since(start)
}

// errNotYetManaged is the plan's answer for NICs NetworkManager has not taken over within the wait.
func errNotYetManaged(names []string, waited time.Duration) error {
	return fmt.Errorf("%w: not yet managed: NetworkManager has not taken over %s after %s (a new NIC: udev has not initialised it yet); try again in a moment (kvmnetctl guests fix), or check `udevadm info /sys/class/net/%s`; nothing was changed",
		ErrPrecondition, strings.Join(names, ", "), waited.Round(100*time.Millisecond), names[0])
}
