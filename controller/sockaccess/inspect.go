package sockaccess

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/kvmnet/kvmnet/controller/snapshot"
)

// Inspector evaluates real sockets on this host.
type Inspector struct {
	// Root is prepended to every path that is stat'ed: "" for this host's filesystem,
	// "/proc/PID/root" to look through the mount namespace of process PID (a containerised or private
	// libvirtd). Reported paths never include it.
	Root string
	// AccountsDir holds passwd and group (read directly, not under Root). Default "/etc".
	AccountsDir string
	// Trusted users are not counted as exposure (QEMU's user; see QEMUUser).
	Trusted []string
}

// ReadAccounts parses dir/passwd and dir/group.
func ReadAccounts(dir string) (Accounts, error) {
	pf, err := os.Open(filepath.Join(dir, "passwd"))
	if err != nil {
		return Accounts{}, fmt.Errorf("accounts: %w", err)
	}
	defer pf.Close()
	users, err := ParsePasswd(pf)
	if err != nil {
		return Accounts{}, fmt.Errorf("accounts: %s: %w", pf.Name(), err)
	}
	gf, err := os.Open(filepath.Join(dir, "group"))
	if err != nil {
		return Accounts{}, fmt.Errorf("accounts: %w", err)
	}
	defer gf.Close()
	groups, err := ParseGroup(gf)
	if err != nil {
		return Accounts{}, fmt.Errorf("accounts: %s: %w", gf.Name(), err)
	}
	return Accounts{Users: users, Groups: groups}, nil
}

// Inspect evaluates who can connect() to the unix socket at path.
func (in Inspector) Inspect(path string) (snapshot.SocketAccess, error) {
	chain, err := in.Chain(path)
	if err != nil {
		return snapshot.SocketAccess{}, err
	}
	dir := in.AccountsDir
	if dir == "" {
		dir = "/etc"
	}
	acc, err := ReadAccounts(dir)
	if err != nil {
		return snapshot.SocketAccess{}, err
	}
	a := Evaluate(chain, acc, Options{Trusted: in.Trusted})
	if in.Root != "" {
		a.Evidence += " seen_through=" + in.Root
	}
	return a, nil
}

// Chain stats every directory a connect() to path traverses (following symlinks the way the kernel
// does, each directory once) and, last, the socket itself.
func (in Inspector) Chain(path string) ([]Node, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("socket path %q: not absolute", path)
	}
	var nodes []Node
	seen := map[string]bool{}
	addDir := func(p string) error {
		if seen[p] {
			return nil
		}
		n, err := in.stat(p)
		if err != nil {
			return err
		}
		seen[p] = true
		nodes = append(nodes, n)
		return nil
	}
	if err := addDir("/"); err != nil {
		return nil, err
	}
	pending := splitPath(path)
	cur := "/"
	hops := 0
	for len(pending) > 0 {
		comp := pending[0]
		pending = pending[1:]
		switch comp {
		case ".":
			continue
		case "..":
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, comp)
		n, err := in.stat(next)
		if err != nil {
			return nil, err
		}
		if n.Mode&os.ModeSymlink != 0 {
			hops++
			if hops > 40 {
				return nil, fmt.Errorf("socket path %s: too many symlinks", path)
			}
			target, err := os.Readlink(in.Root + next)
			if err != nil {
				return nil, fmt.Errorf("socket path %s: %w", path, err)
			}
			if filepath.IsAbs(target) {
				cur = "/"
			}
			pending = append(splitPath(target), pending...)
			continue
		}
		if len(pending) == 0 {
			nodes = append(nodes, n)
			break
		}
		if !n.Mode.IsDir() {
			return nil, fmt.Errorf("socket path %s: %s is not a directory", path, next)
		}
		if err := addDir(next); err != nil {
			return nil, err
		}
		cur = next
	}
	if len(nodes) < 2 {
		return nil, fmt.Errorf("socket path %s: names a directory", path)
	}
	return nodes, nil
}

func (in Inspector) stat(p string) (Node, error) {
	fi, err := os.Lstat(in.Root + p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return Node{}, fmt.Errorf("socket path: %s does not exist (is the domain running?): %w", p, err)
		}
		return Node{}, fmt.Errorf("socket path: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return Node{}, fmt.Errorf("socket path: %s: no owner information", p)
	}
	n := Node{Path: p, UID: st.Uid, GID: st.Gid, Mode: fi.Mode()}
	if fi.Mode()&os.ModeSymlink == 0 {
		if sz, err := unix.Lgetxattr(in.Root+p, "system.posix_acl_access", nil); err == nil && sz > 0 {
			n.HasACL = true
		}
	}
	return n, nil
}

func splitPath(p string) []string {
	var out []string
	for _, c := range strings.Split(p, "/") {
		if c != "" {
			out = append(out, c)
		}
	}
	return out
}

// FillChannelAccess sets ChannelAccess on every running domain whose kvmnet channel is a unix socket
// with a known path, and returns the errors of the domains it could not inspect (their ChannelAccess
// stays nil). Only meaningful when libvirt runs on this host.
func (in Inspector) FillChannelAccess(doms []snapshot.Domain) error {
	var errs []error
	for i := range doms {
		d := &doms[i]
		ch, ok := d.Channel(snapshot.ChannelKvmnet)
		if !ok || ch.Type != "unix" || ch.Path == "" || !d.Running() {
			continue
		}
		a, err := in.Inspect(ch.Path)
		if err != nil {
			errs = append(errs, fmt.Errorf("domain %s: channel %s: %w", d.Name, ch.Name, err))
			continue
		}
		d.ChannelAccess = &a
	}
	return errors.Join(errs...)
}
