package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestGuestsEnableChannelCLI drives `guests enable-channel` against libvirt's in-memory test driver
// (no QEMU: the channel directory is not touched in --dry-run; a real libvirtd is covered by
// controller/channel's integration test).
func TestGuestsEnableChannelCLI(t *testing.T) {
	env := map[string]string{}
	cases := []struct {
		name     string
		args     []string
		code     int
		stdout   []string
		stderr   string
		jsonPath string
	}{
		{"dry run shows the diff", []string{"-c", "test:///default", "guests", "enable-channel", "test", "--dry-run"}, 0,
			[]string{"+      <source mode='bind' path='/var/lib/kvmnet/channels/test.agent.0'/>",
				"+      <target type='virtio' name='org.kvmnet.agent.0'/>", "dry run: nothing changed"}, "", ""},
		{"json with vsock", []string{"-c", "test:///default", "-o", "json", "guests", "enable-channel", "test", "--vsock",
			"--dry-run", "--dir", "/srv/ch"}, 0, []string{`"kind": "add-vsock"`}, "", "/srv/ch/test.agent.0"},
		{"unknown domain: exit 1", []string{"-c", "test:///default", "guests", "enable-channel", "nope", "--dry-run"}, 1,
			nil, "nope", ""},
		{"relative dir: exit 1", []string{"-c", "test:///default", "guests", "enable-channel", "test", "--dry-run",
			"--dir", "rel"}, 1, nil, "absolute", ""},
		{"missing VM: usage", []string{"-c", "test:///default", "guests", "enable-channel"}, 2, nil, "accepts 1 arg", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := runCLI(t, env, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out, errOut)
			}
			for _, s := range tc.stdout {
				if !strings.Contains(out, s) {
					t.Errorf("stdout lacks %q:\n%s", s, out)
				}
			}
			if tc.stderr != "" && !strings.Contains(errOut, tc.stderr) {
				t.Errorf("stderr lacks %q: %s", tc.stderr, errOut)
			}
			if tc.jsonPath != "" {
				var res struct {
					Path    string `json:"path"`
					Diff    string `json:"diff"`
					Applied bool   `json:"applied"`
				}
				if err := json.Unmarshal([]byte(out), &res); err != nil {
					t.Fatalf("json: %v\n%s", err, out)
				}
				if res.Path != tc.jsonPath || res.Applied || !strings.Contains(res.Diff, "<vsock model='virtio'>") {
					t.Fatalf("json result %+v", res)
				}
			}
		})
	}
}
