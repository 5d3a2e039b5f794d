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

// TestRunningRemembersPIDOnlyAsHint: the process found last is asked first, but a PID that no longer
// runs qemu-ga (ended, or reused by another program) falls back to the full scan, so the answer is
// the scan's every time.
func TestRunningRemembersPIDOnlyAsHint(t *testing.T) {
	root := build(t, map[string]string{"proc/1/comm": "systemd\n", "proc/412/comm": "qemu-ga\n"}, nil)
	c, _ := New(root)
	write := func(p, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		name    string
		change  func()
		want    bool
		wantPID int64
	}{
		{"found by scan", func() {}, true, 412},
		{"found again through the remembered pid", func() {}, true, 412},
		{"pid reused by another program, qemu-ga restarted elsewhere", func() {
			write("proc/412/comm", "bash\n")
			write("proc/913/comm", "qemu-ga\n")
		}, true, 913},
		{"qemu-ga ended", func() {
			if err := os.RemoveAll(filepath.Join(root, "proc/913")); err != nil {
				t.Fatal(err)
			}
		}, false, 913},
	}
	for _, s := range steps {
		s.change()
		if got := c.running(); got != s.want {
			t.Fatalf("%s: running = %t, want %t", s.name, got, s.want)
		}
		if got := c.lastPID.Load(); got != s.wantPID {
			t.Fatalf("%s: remembered pid %d, want %d", s.name, got, s.wantPID)
		}
	}
}
