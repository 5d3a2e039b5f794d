package qga

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"

	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// Channel is the guest end of qemu-guest-agent's virtio-serial port.
const Channel = "/dev/virtio-ports/org.qemu.guest_agent.0"

// binaries are where distributions install qemu-ga.
var binaries = []string{"usr/sbin/qemu-ga", "usr/bin/qemu-ga", "usr/local/bin/qemu-ga", "usr/local/sbin/qemu-ga"}

// Checker inspects qemu-guest-agent under a root directory.
type Checker struct {
	root string
	// lastPID is the process last found running qemu-ga (0: none yet). Checking it first answers
	// "running" with one read instead of a scan of every process; it is only a hint: its comm is
	// read again each time and a miss falls back to the full scan.
	lastPID atomic.Int64
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

// running reports whether some <root>/proc/<pid>/comm is "qemu-ga": the process found last time
// first, then a scan of every process.
func (c *Checker) running() bool {
	if pid := c.lastPID.Load(); pid > 0 && c.isQGA(strconv.FormatInt(pid, 10)) {
		return true
	}
	entries, err := os.ReadDir(filepath.Join(c.root, "proc"))
	if err != nil {
		return false
	}
	for _, e := range entries {
		name := e.Name()
		if name == "" || strings.Trim(name, "0123456789") != "" {
			continue
		}
		if c.isQGA(name) {
			if pid, err := strconv.ParseInt(name, 10, 64); err == nil {
				c.lastPID.Store(pid)
			}
			return true
		}
	}
	return false
}

// isQGA reports whether process pid's comm is "qemu-ga"; a process that ended is not.
func (c *Checker) isQGA(pid string) bool {
	b, err := os.ReadFile(filepath.Join(c.root, "proc", pid, "comm"))
	return err == nil && strings.TrimSpace(string(b)) == "qemu-ga"
}
