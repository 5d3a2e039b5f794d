package transport

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// SocketMode is the permission of the unix sockets the agent creates: root only.
const SocketMode fs.FileMode = 0o600

// ListenUnix listens on a unix socket at path. A stale socket left by a previous run (nobody accepts
// on it) is removed; a live one, or a file that is not a socket, is an error. The socket is made
// SocketMode (0600) and its parent directory is created 0700 when missing.
func ListenUnix(path string) (net.Listener, error) {
	if path == "" {
		return nil, errors.New("transport: unix socket path is empty; use unix:/run/kvmnet/agent.sock")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("transport: create directory of unix socket %s: %w", path, err)
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("transport: listen on unix socket %s: %w", path, err)
	}
	if err := os.Chmod(path, SocketMode); err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("transport: chmod %o unix socket %s: %w", SocketMode, path, err)
	}
	return l, nil
}

// removeStale removes path if it is a unix socket nobody listens on.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("transport: stat unix socket %s: %w", path, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("transport: %s exists and is not a socket (%s); remove it or choose another path", path, fi.Mode().Type())
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		_ = c.Close()
		return fmt.Errorf("transport: unix socket %s is in use by a running process; stop it first", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("transport: probe unix socket %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("transport: remove stale unix socket %s: %w", path, err)
	}
	return nil
}
