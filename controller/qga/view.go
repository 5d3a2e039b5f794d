package qga

import (
	"context"
	"errors"
	"time"

	"github.com/kvmnet/kvmnet/controller/snapshot"
)

// View asks qemu-guest-agent for the guest's interfaces, OS and host name. The interfaces decide
// Answered; the OS and host name are best effort (older qemu-ga lacks guest-get-osinfo). It never
// fails: a guest that does not answer yields a view with Error set. Bounded by ctx and the client's
// per-command timeout.
func View(ctx context.Context, c *Client) snapshot.QGAView {
	var v snapshot.QGAView
	t0 := time.Now()
	ifs, err := c.Interfaces(ctx)
	if err != nil {
		v.Error = Text(Describe(err), 4*MaxTextLen)
		return v
	}
	v.Latency, v.Answered = time.Since(t0), true
	for _, it := range ifs {
		v.Interfaces = append(v.Interfaces, snapshot.QGAInterface{Name: it.Name, MAC: it.MAC, IPv4: it.IPv4, IPv6: it.IPv6})
	}
	if os, err := c.OSInfo(ctx); err == nil {
		v.OS = &snapshot.QGAOS{ID: os.ID, PrettyName: os.PrettyName, VersionID: os.VersionID, Machine: os.Machine, KernelRelease: os.KernelRelease}
	}
	if h, err := c.HostName(ctx); err == nil {
		v.HostName = h
	}
	return v
}

// Describe turns a client error into one line saying what it means for the user.
func Describe(err error) string {
	switch {
	case errors.Is(err, ErrNotConfigured):
		return "no org.qemu.guest_agent.0 channel in the domain"
	case errors.Is(err, ErrDomainNotRunning):
		return "the domain is not running"
	case errors.Is(err, ErrNotResponding):
		return "qemu-guest-agent does not answer (not installed or not running in the guest): " + err.Error()
	case errors.Is(err, context.DeadlineExceeded):
		return "qemu-guest-agent did not answer in time: " + err.Error()
	}
	return err.Error()
}
