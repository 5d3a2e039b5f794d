package sysctl

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/kvmnet/kvmnet/agent/files"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// Writer performs live sysctl writes.
type Writer interface {
	// WriteSysctl sets w.Key to w.Value.
	WriteSysctl(w Write) error
}

// ProcWriter writes sysctls as files under <root>/proc/sys. The file must exist: it never creates
// one. /proc/sys/net follows the network namespace of the calling thread.
type ProcWriter struct {
	root string
}

// NewProcWriter returns a ProcWriter for root ("/" in production).
func NewProcWriter(root string) (*ProcWriter, error) {
	if root == "" {
		return nil, errors.New("sysctl: root directory is required (\"/\" in production)")
	}
	return &ProcWriter{root: root}, nil
}

// WriteSysctl writes w.Value to <root>/<w.Path>.
func (p *ProcWriter) WriteSysctl(w Write) error {
	if !strings.HasPrefix(w.Path, "proc/sys/") || filepath.Clean(w.Path) != w.Path {
		return fmt.Errorf("sysctl %s: refusing path %q outside proc/sys", w.Key, w.Path)
	}
	f, err := os.OpenFile(filepath.Join(p.root, w.Path), os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return fmt.Errorf("set %s: %w", w.Key, err)
	}
	if _, err := f.WriteString(w.Value + "\n"); err != nil {
		f.Close()
		return fmt.Errorf("set %s=%s: %w", w.Key, w.Value, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("set %s=%s: %w", w.Key, w.Value, err)
	}
	return nil
}

// Manager disables and re-enables IPv6: PersistentFile through agent/files and live sysctls
// through a Writer.
type Manager struct {
	files *files.Store
	w     Writer
	r     *Reader
}

// NewManager returns a Manager writing files through store, live sysctls through w, and reading
// current values through r.
func NewManager(store *files.Store, w Writer, r *Reader) (*Manager, error) {
	if store == nil || w == nil || r == nil {
		return nil, errors.New("sysctl: NewManager needs a file store, a sysctl writer and a reader")
	}
	return &Manager{files: store, w: w, r: r}, nil
}

// Plan returns the changes that Apply(disable, ifaces) would make, without making them.
func (m *Manager) Plan(disable bool, ifaces []string) ([]*kvmnetv1.Change, error) {
	return m.run(disable, ifaces, true)
}

// Apply disables (disable=true: write PersistentFile, set disable_ipv6=1 on default, all and each
// interface) or re-enables IPv6 (remove kvmnet's file, set them back to 0), and returns what
// changed. Settings already in place are left alone; a second Apply returns no changes. Re-enabling
// also returns a "note" change naming other files that disable IPv6 at boot (kvmnet leaves those
// alone).
func (m *Manager) Apply(disable bool, ifaces []string) ([]*kvmnetv1.Change, error) {
	return m.run(disable, ifaces, false)
}

func (m *Manager) run(disable bool, ifaces []string, dry bool) ([]*kvmnetv1.Change, error) {
	writes, err := LiveWrites(disable, ifaces)
	if err != nil {
		return nil, err
	}
	var changes []*kvmnetv1.Change
	fc, err := m.fileChange(disable, dry)
	if err != nil {
		return nil, err
	}
	if fc != nil {
		changes = append(changes, fc)
	}
	if !m.r.ipv6Present() {
		if !disable {
			return nil, errors.New("cannot enable IPv6: the kernel has no IPv6 (ipv6.disable=1 on the kernel command line?)")
		}
		return changes, nil
	}
	for _, w := range writes {
		cur, err := m.r.Read(w)
		if errors.Is(err, fs.ErrNotExist) {
			continue // interface without IPv6 sysctls (gone, or not a netdev)
		}
		if err != nil {
			return changes, fmt.Errorf("read %s: %w", w.Key, err)
		}
		if cur == w.Value {
			continue
		}
		if !dry {
			if err := m.w.WriteSysctl(w); err != nil {
				return changes, err
			}
		}
		changes = append(changes, &kvmnetv1.Change{
			Kind:    "sysctl",
			Target:  w.Key,
			Summary: fmt.Sprintf("set %s = %s (was %s)", w.Key, w.Value, cur),
			Diff:    fmt.Sprintf("-%s = %s\n+%s = %s\n", w.Key, cur, w.Key, w.Value),
		})
	}
	if !disable {
		for _, f := range m.r.OtherDisablingFiles() {
			changes = append(changes, &kvmnetv1.Change{
				Kind:    "note",
				Target:  f,
				Summary: fmt.Sprintf("%s also disables IPv6 at boot; kvmnet does not edit it, remove it by hand to keep IPv6 after a reboot", f),
			})
		}
	}
	return changes, nil
}

func (m *Manager) fileChange(disable bool, dry bool) (*kvmnetv1.Change, error) {
	cur, err := m.files.Read(PersistentFile)
	exists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if disable {
		want := files.WithHeader(RenderDisable())
		if exists && string(cur) == string(want) {
			return nil, nil
		}
		c := &kvmnetv1.Change{
			Kind: "file", Target: PersistentFile,
			Summary: "write " + PersistentFile + " (IPv6 stays disabled after reboots)",
			Diff:    files.LineDiff(string(cur), string(want)),
		}
		if !dry {
			res, err := m.files.Write(PersistentFile, RenderDisable(), 0o644)
			if err != nil {
				return nil, err
			}
			c.Diff = res.Diff()
		}
		return c, nil
	}
	if !exists {
		return nil, nil
	}
	c := &kvmnetv1.Change{
		Kind: "file", Target: PersistentFile,
		Summary: "remove " + PersistentFile,
		Diff:    files.LineDiff(string(cur), ""),
	}
	if !dry {
		if _, err := m.files.Remove(PersistentFile); err != nil {
			return nil, fmt.Errorf("re-enable IPv6: %w", err)
		}
	} else if _, ok, err := m.files.Entry(PersistentFile); err != nil {
		return nil, err
	} else if !ok {
		return nil, fmt.Errorf("re-enable IPv6: %s exists but kvmnet did not write it; remove it by hand", PersistentFile)
	}
	return c, nil
}

// Capture returns the current values of the sysctls LiveWrites(…, ifaces) touches, as writes that
// RestoreLive can replay: take it before Apply to roll the live state back later.
func (m *Manager) Capture(ifaces []string) ([]Write, error) {
	writes, err := LiveWrites(true, ifaces)
	if err != nil {
		return nil, err
	}
	var out []Write
	for _, w := range writes {
		v, err := m.r.Read(w)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", w.Key, err)
		}
		w.Value = v
		out = append(out, w)
	}
	return out, nil
}

// RestoreLive writes saved values back (those that differ now), continuing past failures.
func (m *Manager) RestoreLive(saved []Write) error {
	var errs []error
	for _, w := range saved {
		if cur, err := m.r.Read(w); err == nil && cur == w.Value {
			continue
		}
		if err := m.w.WriteSysctl(w); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
