package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// crashLab is a real kvmnet-agent binary serving a unix socket over a temporary root (files under
// root/etc, live sysctls as plain files under root/proc/sys, boot id under
// root/proc/sys/kernel/random/boot_id). NetworkManager is absent: its bus address leads nowhere.
type crashLab struct {
	dir, root, bin, sock, cfg string
	cmd                       *exec.Cmd
}

func newCrashLab(t *testing.T) *crashLab {
	t.Helper()
	dir := t.TempDir()
	l := &crashLab{dir: dir, root: filepath.Join(dir, "root"), bin: filepath.Join(dir, "kvmnet-agent"),
		sock: filepath.Join(dir, "agent.sock"), cfg: filepath.Join(dir, "agent.yaml")}
	if out, err := exec.Command("go", "build", "-tags", "grpcnotrace", "-o", l.bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build the agent: %v\n%s", err, out)
	}
	for _, d := range []string{"etc/sysctl.d", "etc/apt/apt.conf.d", "proc/sys/net/ipv6/conf/all", "proc/sys/net/ipv6/conf/default", "proc/sys/kernel/random"} {
		if err := os.MkdirAll(filepath.Join(l.root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"all", "default"} {
		l.write(t, "proc/sys/net/ipv6/conf/"+k+"/disable_ipv6", "0\n")
	}
	l.write(t, "proc/sys/kernel/random/boot_id", "11111111-1111-1111-1111-111111111111\n")
	cfg := fmt.Sprintf("root: %s\nlisten: [\"unix:%s\"]\nlog_level: debug\n", l.root, l.sock)
	if err := os.WriteFile(l.cfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if l.cmd != nil {
			_ = l.cmd.Process.Kill()
			_ = l.cmd.Wait()
		}
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "agent.log"))
			t.Logf("agent log:\n%s", b)
		}
	})
	return l
}

func (l *crashLab) write(t *testing.T, rel, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(l.root, rel), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (l *crashLab) read(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(l.root, rel))
	if errors.Is(err, os.ErrNotExist) {
		return "<absent>"
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// changed reports whether the Apply's changes are in place, and all of them.
func (l *crashLab) changed(t *testing.T) (all, none bool) {
	t.Helper()
	got := []bool{
		l.read(t, "proc/sys/net/ipv6/conf/all/disable_ipv6") == "1\n",
		l.read(t, "proc/sys/net/ipv6/conf/default/disable_ipv6") == "1\n",
		l.read(t, "etc/sysctl.d/99-kvmnet-disable-ipv6.conf") != "<absent>",
		l.read(t, "etc/apt/apt.conf.d/99kvmnet-force-ipv4") != "<absent>",
	}
	all, none = true, true
	for _, g := range got {
		all = all && g
		none = none && !g
	}
	return all, none
}

// start runs the agent and returns a client once it answers GetState (it resumes before it serves).
func (l *crashLab) start(t *testing.T) kvmnetv1.AgentClient {
	t.Helper()
	logf, err := os.OpenFile(filepath.Join(l.dir, "agent.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	_ = os.Remove(l.sock)
	l.cmd = exec.Command(l.bin, "--config", l.cfg)
	l.cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS=unix:path="+filepath.Join(l.dir, "no-bus"), "NOTIFY_SOCKET=")
	l.cmd.Stdout, l.cmd.Stderr = logf, logf
	if err := l.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient("unix:"+l.sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	c := kvmnetv1.NewAgentClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.GetState(ctx, &kvmnetv1.GetStateRequest{}, grpc.WaitForReady(true)); err != nil {
		t.Fatalf("agent did not answer within 30s: %v", err)
	}
	return c
}

// kill ends the agent with SIGKILL: no Close, no rollback, nothing flushed.
func (l *crashLab) kill(t *testing.T) {
	t.Helper()
	if err := l.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = l.cmd.Wait()
	if ws, ok := l.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("agent ended with %v, not SIGKILL", l.cmd.ProcessState)
	}
	l.cmd = nil
}

func pendingOf(t *testing.T, c kvmnetv1.AgentClient) *kvmnetv1.Checkpoint {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := c.GetState(ctx, &kvmnetv1.GetStateRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return st.GetPendingCheckpoint()
}

func applyIPv4Only(t *testing.T, c kvmnetv1.AgentClient, timeout uint32) *kvmnetv1.ApplyResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := c.Apply(ctx, &kvmnetv1.ApplyRequest{RollbackTimeoutSeconds: timeout, Actions: []*kvmnetv1.Action{
		{Action: &kvmnetv1.Action_SetIpv6{SetIpv6: &kvmnetv1.SetIPv6{Disable: true}}},
		{Action: &kvmnetv1.Action_SetPackageManagerIpv4{SetPackageManagerIpv4: &kvmnetv1.SetPackageManagerIPv4{Force: true}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestPendingCheckpointSurvivesSIGKILL: a real agent process with a pending checkpoint is killed
// with SIGKILL. Started again in the same boot before the deadline, it still has the checkpoint
// pending (Confirm would work); started after a reboot (new boot id) or after the deadline, it puts
// back the files and live sysctls before it serves.
func TestPendingCheckpointSurvivesSIGKILL(t *testing.T) {
	l := newCrashLab(t)
	c := l.start(t)
	resp := applyIPv4Only(t, c, 600)
	if all, _ := l.changed(t); !all || resp.GetCheckpointId() == "" {
		t.Fatalf("Apply did not change everything: %v", resp)
	}
	l.kill(t)

	c = l.start(t)
	if cp := pendingOf(t, c); cp.GetId() != resp.GetCheckpointId() || len(cp.GetChanges()) != len(resp.GetChanges()) {
		t.Fatalf("same boot, deadline ahead: pending %v, want %s taken over", cp, resp.GetCheckpointId())
	}
	if all, _ := l.changed(t); !all {
		t.Fatal("the restart within the deadline undid changes")
	}
	l.kill(t)

	l.write(t, "proc/sys/kernel/random/boot_id", "22222222-2222-2222-2222-222222222222\n")
	start := time.Now()
	c = l.start(t)
	if _, none := l.changed(t); !none || pendingOf(t, c) != nil {
		t.Fatalf("after a reboot: changes left (sysctl %q), pending %v", l.read(t, "proc/sys/net/ipv6/conf/all/disable_ipv6"), pendingOf(t, c))
	}
	t.Logf("restart after reboot to restored and serving: %s", time.Since(start).Round(time.Millisecond))

	resp = applyIPv4Only(t, c, 10)
	l.kill(t)
	time.Sleep(time.Until(resp.GetRollbackDeadline().AsTime())) // the condition is the deadline itself
	c = l.start(t)
	if _, none := l.changed(t); !none || pendingOf(t, c) != nil {
		t.Fatal("after the deadline passed while no agent ran: changes left")
	}
	if logs, _ := os.ReadFile(filepath.Join(l.dir, "agent.log")); !strings.Contains(string(logs), "passed while no agent ran") ||
		!strings.Contains(string(logs), "rebooted since") {
		t.Errorf("the restores' reasons are not logged:\n%s", logs)
	}
}
