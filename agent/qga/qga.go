package qga

import (
	"errors"
	"os"
	"path/filepath"
	"strings"

	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// Channel is the guest end of qemu-guest-agent's virtio-serial port.
const Channel = "/dev/virtio-ports/org.qemu.guest_agent.0"

// binaries are where distributions install qemu-ga.
var binaries = []string{"usr/sbin/qemu-ga", "usr/bin/qemu-ga", "usr/local/bin/qemu-ga", "usr/local/sbin/qemu-ga"}

// Checker inspects qemu-guest-agent under a root directory.
type Checker struct {
	root string
}

// New returns a Checker for root ("/" in production).
func New(root string) (*Checker, error) {
	if root == "" {
		return nil, errors.New("qga: root directory is required (\"/\" in production)")
	}
	return &Checker{root: root}, nil
}

// State reports installed, running and channel_present.
func (c *Checker) State() *kvmnetv1.QemuGuestAgentState {
	st := &kvmnetv1.QemuGuestAgentState{}
	for _, b := range binaries {
		if fi, err := os.Stat(filepath.Join(c.root, b)); err == nil && fi.Mode().IsRegular() {
			st.Installed = true
			break
		}
	}
	st.Running = c.running()
	// The channel is a symlink to /dev/vportNpM created by udev; its presence is what counts.
	if _, err := os.Lstat(filepath.Join(c.root, Channel)); err == nil {
		st.ChannelPresent = true
	}
	return st
}

// running scans <root>/proc/<pid>/comm for "qemu-ga".
func (c *Checker) running() bool {
	entries, err := os.ReadDir(filepath.Join(c.root, "proc"))
	if err != nil {
		return false
	}
	for _, e := range entries {
		name := e.Name()
		if name == "" || strings.Trim(name, "0123456789") != "" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(c.root, "proc", name, "comm"))
		if err != nil {
			continue // the process ended while scanning
		}
		if strings.TrimSpace(string(b)) == "qemu-ga" {
			return true
		}
	}
	return false
}
