package managedfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ErrNotAllowed is wrapped by every error that refuses a path (outside the allow-list, "..",
// symlinks, hidden names).
var ErrNotAllowed = errors.New("path not allowed")

// DefaultAllowed returns the directories, relative to the root, whose direct children the agent may
// write: sysctl.d (IPv6), apt.conf.d (apt ForceIPv4), /etc/dnf (dnf.conf ip_resolve), and the
// network stacks' directories (agent/netstack's backends): /etc/netplan, /etc/systemd/network,
// /etc/network (interfaces) and /etc/network/interfaces.d.
func DefaultAllowed() []string {
	return []string{"etc/sysctl.d", "etc/apt/apt.conf.d", "etc/dnf",
		"etc/netplan", "etc/systemd/network", "etc/network", "etc/network/interfaces.d"}
}

// guestPath is a validated path: rel is relative to the root ("etc/dnf/dnf.conf"), abs is the host
// path under the root, guest is the path as the guest sees it ("/etc/dnf/dnf.conf").
type guestPath struct {
	rel, abs, guest string
}

// resolve validates path (a guest path such as "/etc/dnf/dnf.conf" or "etc/dnf/dnf.conf") against
// the allow-list and the filesystem under the root; it never follows symlinks.
func (s *Store) resolve(path string) (guestPath, error) {
	refuse := func(why string) (guestPath, error) {
		return guestPath{}, fmt.Errorf("%w: %q: %s (kvmnet only writes files directly inside %s under the agent root)",
			ErrNotAllowed, path, why, strings.Join(s.allowed, ", "))
	}
	if path == "" {
		return refuse("empty path")
	}
	if len(path) > 4096 || strings.ContainsRune(path, 0) {
		return refuse("malformed path")
	}
	rel := strings.TrimPrefix(path, "/")
	if rel == "" || filepath.Clean(rel) != rel || strings.HasPrefix(rel, "/") {
		return refuse("path is not in clean form")
	}
	for _, part := range strings.Split(rel, "/") {
		if part == ".." || part == "." {
			return refuse("path contains " + part)
		}
	}
	dir, base := filepath.Split(rel)
	dir = strings.TrimSuffix(dir, "/")
	if strings.HasPrefix(base, ".") {
		return refuse("hidden file names are reserved for kvmnet's temporary files")
	}
	allowed := false
	for _, a := range s.allowed {
		if dir == a {
			allowed = true
			break
		}
	}
	if !allowed {
		return refuse("directory " + "/" + dir + " is not in the allow-list")
	}
	// No symlink anywhere between the root and the file: a link could point out of the root or out
	// of the allow-listed directory.
	cur := s.root
	parts := strings.Split(rel, "/")
	for i, part := range parts {
		cur = filepath.Join(cur, part)
		fi, err := os.Lstat(cur)
		if errors.Is(err, fs.ErrNotExist) {
			break
		}
		if err != nil {
			return guestPath{}, fmt.Errorf("inspect %s: %w", cur, err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return refuse("/" + strings.Join(parts[:i+1], "/") + " is a symlink; kvmnet never writes through symlinks")
		}
		last := i == len(parts)-1
		if !last && !fi.IsDir() {
			return refuse("/" + strings.Join(parts[:i+1], "/") + " is not a directory")
		}
		if last && !fi.Mode().IsRegular() {
			return refuse("existing " + path + " is not a regular file")
		}
	}
	return guestPath{rel: rel, abs: filepath.Join(s.root, rel), guest: "/" + rel}, nil
}

// Validate reports whether path may be written through the Store, with the reason when not.
func (s *Store) Validate(path string) error {
	_, err := s.resolve(path)
	return err
}
