package apply

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ProcSysctl reads and writes live sysctls under <Root>/proc/sys. Keys are dotted
// ("net.ipv6.conf.all.disable_ipv6") and must be made of [a-z0-9_] words: no path components.
type ProcSysctl struct {
	// Root is the filesystem root ("/" in production).
	Root string
}

func (s ProcSysctl) path(key string) (string, error) {
	parts := strings.Split(key, ".")
	for _, p := range parts {
		if p == "" || strings.Trim(p, "abcdefghijklmnopqrstuvwxyz0123456789_-") != "" {
			return "", fmt.Errorf("%w: sysctl key %q", ErrInvalid, key)
		}
	}
	return filepath.Join(append([]string{s.Root, "proc", "sys"}, parts...)...), nil
}

// Get returns the value of key, trimmed.
func (s ProcSysctl) Get(key string) (string, error) {
	p, err := s.path(key)
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("read sysctl %s: %w", key, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// Set writes value to key.
func (s ProcSysctl) Set(key, value string) error {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(p, []byte(value+"\n"), 0o644); err != nil {
		return fmt.Errorf("set sysctl %s=%s: %w", key, value, err)
	}
	return nil
}
