package transport

import (
	"os"
	"path/filepath"
	"testing"
)

// portGone tells an unplugged (removed or replaced) device node from the one still open: the only
// difference the agent can see, since an unplugged virtio-serial port polls POLLHUP like a port
// without a host client.
func TestPortGone(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, path string)
		gone   bool
		why    string
	}{
		{"still there", func(*testing.T, string) {}, false, ""},
		{"removed (channel detached)", func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}, true, "device node removed"},
		{"replaced (channel detached and attached again)", func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}, true, "device node replaced"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "org.kvmnet.agent.0")
			if err := os.WriteFile(path, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			tc.change(t, path)
			gone, why := portGone(f)
			if gone != tc.gone || why != tc.why {
				t.Errorf("portGone = %v %q, want %v %q", gone, why, tc.gone, tc.why)
			}
		})
	}
}
