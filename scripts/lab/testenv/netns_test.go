package testenv

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestNetnsVethAndCleanup(t *testing.T) {
	Require(t, "ip")
	var name string
	t.Run("inner", func(t *testing.T) {
		a := NewNetns(t, "te")
		b := NewNetns(t, "te")
		name = a.Name
		a.Veth("va", b, "vb")
		a.MustRun("ip", "addr", "add", "10.250.0.1/30", "dev", "va")
		b.MustRun("ip", "addr", "add", "10.250.0.2/30", "dev", "vb")
		out := a.MustRun("ping", "-c1", "-W2", "10.250.0.2")
		if !strings.Contains(out, "1 received") {
			t.Fatalf("ping across veth failed: %s", out)
		}
		p := a.Start("sleeper", nil, "sleep", "300")
		if p.Exited() {
			t.Fatal("sleeper exited early")
		}
	})
	out, err := NewNetns(t, "te").Run("ip", "netns", "list")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, name) {
		t.Fatalf("namespace %s still exists after its test ended", name)
	}
}

// TestStartSurvivesLockedThreadExit: a daemon started from a goroutine that then exits locked to its
// OS thread (as code that enters a namespace does) keeps running. Before the spawner, the child's
// Pdeathsig fired when that thread exited and the daemon was SIGKILLed (how the lab's dnsmasq died in
// TestGuestFixRealNM).
func TestStartSurvivesLockedThreadExit(t *testing.T) {
	Require(t, "ip", "sleep")
	ns := NewNetns(t, "te")
	type started struct {
		p   *Proc
		tid int
	}
	sc := make(chan started, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		sc <- started{ns.Start("sleeper", nil, "sleep", "300"), syscall.Gettid()}
	}()
	s := <-sc
	task := fmt.Sprintf("/proc/self/task/%d", s.tid)
	if err := WaitFor(10*time.Second, 10*time.Millisecond, func() (bool, error) {
		_, err := os.Stat(task)
		return os.IsNotExist(err), nil
	}); err != nil {
		t.Fatalf("the locked goroutine's thread %d did not exit: %v", s.tid, err)
	}
	// The kernel sends Pdeathsig as the thread exits; the SIGKILLed child is reaped within
	// milliseconds. A second without an exit means no signal came.
	p := s.p
	if err := WaitFor(time.Second, 20*time.Millisecond, func() (bool, error) { return p.Exited(), nil }); err == nil {
		t.Fatalf("sleeper died when the thread that asked for it exited: %s", p.State())
	}
	if got := p.State(); !strings.HasPrefix(got, "running") {
		t.Fatalf("state %q, want running", got)
	}
}
