package nm

import (
	"context"
	"fmt"
	"time"

	gonm "github.com/Wifx/gonetworkmanager/v2"
	"github.com/godbus/dbus/v5"
)

// AddProfile adds and saves a profile; it returns its object path.
func (c *Client) AddProfile(ctx context.Context, s Settings) (dbus.ObjectPath, error) {
	var p dbus.ObjectPath
	if err := c.call(ctx, settingsPath, settingsIface+".AddConnection", []any{s}, &p); err != nil {
		return "", fmt.Errorf("add profile %s: %w", settingID(s), err)
	}
	c.log.Info("nm: profile added", "id", settingID(s), "path", p)
	return p, nil
}

// UpdateProfile replaces the settings of the profile at path and saves them.
func (c *Client) UpdateProfile(ctx context.Context, path dbus.ObjectPath, s Settings) error {
	if err := c.call(ctx, path, connIface+".Update", []any{s}); err != nil {
		return fmt.Errorf("update profile %s: %w", settingID(s), err)
	}
	c.log.Info("nm: profile updated", "id", settingID(s), "path", path)
	return nil
}

// DeleteProfile deletes the profile at path (deactivating it if active).
func (c *Client) DeleteProfile(ctx context.Context, path dbus.ObjectPath) error {
	if err := c.call(ctx, path, connIface+".Delete", nil); err != nil {
		return fmt.Errorf("delete profile %s: %w", path, err)
	}
	c.log.Info("nm: profile deleted", "path", path)
	return nil
}

// ProfileByUUID returns the object path of the profile with uuid.
func (c *Client) ProfileByUUID(ctx context.Context, uuid string) (dbus.ObjectPath, error) {
	var p dbus.ObjectPath
	if err := c.call(ctx, settingsPath, settingsIface+".GetConnectionByUuid", []any{uuid}, &p); err != nil {
		return "", fmt.Errorf("find profile uuid=%s: %w", uuid, err)
	}
	return p, nil
}

// Activate activates the profile at conn on the device at dev; it returns the active connection.
func (c *Client) Activate(ctx context.Context, conn, dev dbus.ObjectPath) (dbus.ObjectPath, error) {
	var ac dbus.ObjectPath
	if err := c.call(ctx, nmPath, nmIface+".ActivateConnection", []any{conn, dev, dbus.ObjectPath("/")}, &ac); err != nil {
		return "", fmt.Errorf("activate profile %s on device %s: %w", conn, dev, err)
	}
	c.log.Info("nm: profile activation started", "profile", conn, "device", dev, "active", ac)
	return ac, nil
}

// WaitIPv4 waits until the device at dev has an IPv4 address while the active connection ac is up,
// for at most timeout. It fails early when the activation fails. It returns the addresses.
func (c *Client) WaitIPv4(ctx context.Context, dev, ac dbus.ObjectPath, timeout time.Duration) ([]string, error) {
	deadline := time.Now().Add(timeout)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	var last Device
	for {
		d, err := c.device(ctx, dev, nil)
		if err == nil {
			last = d
			if len(d.IPv4) > 0 && d.State == gonm.NmDeviceStateActivated {
				return d.IPv4, nil
			}
		}
		if err != nil && ctx.Err() == nil {
			return nil, err
		}
		d = last
		if ac != "" && ctx.Err() == nil {
			var v dbus.Variant
			err := c.call(ctx, ac, propsIface+".Get", []any{activeIface, "State"}, &v)
			if isUnknownObject(err) {
				return nil, fmt.Errorf("activation on %s failed (active connection %s is gone; device state %s)", d.Interface, ac, d.State)
			}
			if st, ok := v.Value().(uint32); ok && gonm.NmActiveConnectionState(st) == gonm.NmActiveConnectionStateDeactivated {
				return nil, fmt.Errorf("activation on %s failed (device state %s)", d.Interface, d.State)
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no IPv4 address on %s within %s (device state %s): is a DHCP server answering on its network?", d.Interface, timeout, d.State)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func settingID(s Settings) string {
	id, _ := s["connection"]["id"].Value().(string)
	return id
}

// Checkpoint flags kvmnet uses: replace any leftover checkpoint, and on rollback delete profiles
// added after it and disconnect devices that appeared after it.
const CheckpointFlags = gonm.NmCheckpointCreateFlagsDestroyAll | gonm.NmCheckpointCreateFlagsDeleteNewConnections |
	gonm.NmCheckpointCreateFlagsDisconnectNewDevices

// CheckpointCreate snapshots the devices (nil: all) and rolls back by itself after rollbackTimeout
// unless destroyed first.
func (c *Client) CheckpointCreate(ctx context.Context, devices []dbus.ObjectPath, rollbackTimeout time.Duration, flags gonm.NmCheckpointCreateFlags) (dbus.ObjectPath, error) {
	if devices == nil {
		devices = []dbus.ObjectPath{}
	}
	secs := uint32(rollbackTimeout / time.Second)
	var p dbus.ObjectPath
	if err := c.call(ctx, nmPath, nmIface+".CheckpointCreate", []any{devices, secs, uint32(flags)}, &p); err != nil {
		return "", fmt.Errorf("create checkpoint (rollback after %ds): %w", secs, err)
	}
	c.log.Info("nm: checkpoint created", "checkpoint", p, "rollback_timeout_s", secs, "flags", uint32(flags))
	return p, nil
}

// CheckpointDestroy keeps the current state and forgets the checkpoint.
func (c *Client) CheckpointDestroy(ctx context.Context, cp dbus.ObjectPath) error {
	if err := c.call(ctx, nmPath, nmIface+".CheckpointDestroy", []any{cp}); err != nil {
		return fmt.Errorf("destroy checkpoint %s: %w", cp, err)
	}
	c.log.Info("nm: checkpoint destroyed", "checkpoint", cp)
	return nil
}

// CheckpointRollback restores the state saved in the checkpoint; it returns the result per device
// (0 = success).
func (c *Client) CheckpointRollback(ctx context.Context, cp dbus.ObjectPath) (map[string]uint32, error) {
	var res map[string]uint32
	if err := c.call(ctx, nmPath, nmIface+".CheckpointRollback", []any{cp}, &res); err != nil {
		return nil, fmt.Errorf("roll back checkpoint %s: %w", cp, err)
	}
	c.log.Info("nm: checkpoint rolled back", "checkpoint", cp, "devices", res)
	return res, nil
}

// CheckpointAdjust resets the checkpoint's rollback timer to timeout from now.
func (c *Client) CheckpointAdjust(ctx context.Context, cp dbus.ObjectPath, timeout time.Duration) error {
	if err := c.call(ctx, nmPath, nmIface+".CheckpointAdjustRollbackTimeout", []any{cp, uint32(timeout / time.Second)}); err != nil {
		return fmt.Errorf("adjust checkpoint %s: %w", cp, err)
	}
	return nil
}

// Checkpoints lists existing checkpoints.
func (c *Client) Checkpoints(ctx context.Context) ([]dbus.ObjectPath, error) {
	var v dbus.Variant
	if err := c.call(ctx, nmPath, propsIface+".Get", []any{nmIface, "Checkpoints"}, &v); err != nil {
		return nil, err
	}
	ps, _ := v.Value().([]dbus.ObjectPath)
	return ps, nil
}

// Deactivate deactivates the active connection ac (the device stays managed and may autoconnect
// another profile).
func (c *Client) Deactivate(ctx context.Context, ac dbus.ObjectPath) error {
	if err := c.call(ctx, nmPath, nmIface+".DeactivateConnection", []any{ac}); err != nil {
		return fmt.Errorf("deactivate %s: %w", ac, err)
	}
	c.log.Info("nm: connection deactivated", "active", ac)
	return nil
}
