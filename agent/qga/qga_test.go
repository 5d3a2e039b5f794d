package qga

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

func build(t *testing.T, files map[string]string, links map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, c := range files {
		abs := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(abs, []byte(c), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for p, target := range links {
		abs := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, abs); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestState(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		links map[string]string
		want  *kvmnetv1.QemuGuestAgentState
	}{
		{"nothing", map[string]string{"etc/hostname": "g\n"}, nil, &kvmnetv1.QemuGuestAgentState{}},
		{
			name:  "debian: installed, running, channel",
			files: map[string]string{"usr/sbin/qemu-ga": "ELF", "proc/1/comm": "systemd\n", "proc/412/comm": "qemu-ga\n", "proc/self/comm": "qemu-ga\n"},
			links: map[string]string{"dev/virtio-ports/org.qemu.guest_agent.0": "../vport1p1"},
			want:  &kvmnetv1.QemuGuestAgentState{Installed: true, Running: true, ChannelPresent: true},
		},
		{
			name:  "fedora path, not running: channel missing from the domain XML",
			files: map[string]string{"usr/bin/qemu-ga": "ELF", "proc/1/comm": "systemd\n", "proc/77/comm": "qemu-ga-helper\n"},
			want:  &kvmnetv1.QemuGuestAgentState{Installed: true},
		},
		{
			name:  "channel present but package missing",
			files: map[string]string{"proc/1/comm": "init\n"},
			links: map[string]string{"dev/virtio-ports/org.qemu.guest_agent.0": "../vport2p1"},
			want:  &kvmnetv1.QemuGuestAgentState{ChannelPresent: true},
		},
		{
			name:  "directory named qemu-ga is not a binary; comm of non-pid dirs ignored",
			files: map[string]string{"usr/sbin/qemu-ga/x": "", "proc/sys/comm": "qemu-ga\n"},
			want:  &kvmnetv1.QemuGuestAgentState{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(build(t, tc.files, tc.links))
			if err != nil {
				t.Fatal(err)
			}
			if got := c.State(); got.String() != tc.want.String() {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestRunningOnRealProc scans the machine's real /proc for a process this test starts under the
// name qemu-ga (a copy of sleep), then stops it by PID.
func TestRunningOnRealProc(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	fake := filepath.Join(dir, "qemu-ga")
	b, err := os.ReadFile(sleep)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fake, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(fake, "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	comm, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(cmd.Process.Pid), "comm"))
	if err != nil || strings.TrimSpace(string(comm)) != "qemu-ga" {
		t.Fatalf("comm of the stand-in = %q, %v", comm, err)
	}
	c, _ := New("/")
	if !c.running() {
		t.Fatal("running qemu-ga stand-in not found in /proc")
	}
}
