package testenv

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Netns is a network namespace created for one test and deleted when it ends.
type Netns struct {
	// Name as `ip netns list` shows it.
	Name  string
	t     testing.TB
	mu    sync.Mutex
	proc  []*Proc
	spawn *spawner
}

// spawner forks a namespace's long-running processes from one OS thread that stays alive until the
// namespace is destroyed. Pdeathsig belongs to the thread that forked, not to the process: a child
// forked from whatever thread the test goroutine happened to run on is SIGKILLed when that thread
// exits, and Go ends a thread whenever a goroutine exits while locked to it — which code entering a
// namespace does (ServeHTTP did; agent and test code may). That killed the lab dnsmasq a moment after
// its start in ~1 of 10–20 runs of TestGuestFixRealNM, and NetworkManager then sent DISCOVERs to a
// namespace with no UDP socket (UdpIgnoredMulti) until the agent's 30 s wait rolled back.
type spawner struct{ reqs chan spawnReq }

type spawnReq struct {
	cmd  *exec.Cmd
	errc chan error
}

func newSpawner() *spawner {
	s := &spawner{reqs: make(chan spawnReq)}
	go func() {
		// Never unlocked: when the namespace goes, the thread exits with the goroutine, and Pdeathsig
		// then kills whatever outlived its Stop.
		runtime.LockOSThread()
		for r := range s.reqs {
			r.errc <- r.cmd.Start()
		}
	}()
	return s
}

// start forks cmd from the spawner's thread.
func (s *spawner) start(cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	s.reqs <- spawnReq{cmd: cmd, errc: errc}
	return <-errc
}

func (s *spawner) stop() { close(s.reqs) }

// NewNetns creates a namespace named kvmt-<prefix>-<random> with loopback up. The prefix keeps
// parallel tests (and parallel developers) apart; keep it short (names are limited to 15+ chars in
// some tools).
func NewNetns(t testing.TB, prefix string) *Netns {
	t.Helper()
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	name := fmt.Sprintf("kvmt-%s-%s", prefix, hex.EncodeToString(b))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("create network namespace %s: %v: %s", name, err, out)
	}
	ns := &Netns{Name: name, t: t, spawn: newSpawner()}
	t.Cleanup(ns.destroy)
	ns.MustRun("ip", "link", "set", "lo", "up")
	return ns
}

func (ns *Netns) destroy() {
	ns.mu.Lock()
	procs := ns.proc
	ns.proc = nil
	ns.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].Stop()
	}
	ns.spawn.stop()
	if out, err := exec.Command("ip", "netns", "del", ns.Name).CombinedOutput(); err != nil {
		ns.t.Errorf("delete network namespace %s: %v: %s", ns.Name, err, out)
	}
}

// Command returns an *exec.Cmd that runs argv inside the namespace.
func (ns *Netns) Command(argv ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns.Name}, argv...)...)
}

// Run runs argv inside the namespace and returns its combined output.
func (ns *Netns) Run(argv ...string) (string, error) {
	out, err := ns.Command(argv...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("in netns %s: %s: %w: %s", ns.Name, strings.Join(argv, " "), err, out)
	}
	return string(out), nil
}

// MustRun runs argv inside the namespace and fails the test on error.
func (ns *Netns) MustRun(argv ...string) string {
	ns.t.Helper()
	out, err := ns.Run(argv...)
	if err != nil {
		ns.t.Fatal(err)
	}
	return out
}

// Proc is a long-running process started by a test; Stop kills it by PID.
type Proc struct {
	// Name for messages.
	Name string
	// Cmd is the running command.
	Cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	once sync.Once
	// waitErr is what Wait returned (set before done closes).
	waitErr error
}

// Output returns what the process printed so far.
func (p *Proc) Output() string { return p.out.String() }

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// State says whether the process still runs or how it ended ("running", "exited: signal: killed"),
// for failure messages: a daemon that died unnoticed explains a test that timed out waiting for it.
func (p *Proc) State() string {
	if !p.Exited() {
		return fmt.Sprintf("running (pid %d)", p.Cmd.Process.Pid)
	}
	if p.waitErr == nil {
		return fmt.Sprintf("exited with status 0 (pid %d)", p.Cmd.Process.Pid)
	}
	return fmt.Sprintf("exited: %v (pid %d)", p.waitErr, p.Cmd.Process.Pid)
}

// Stop sends SIGTERM to the process (and its process group), then SIGKILL after 3 s.
func (p *Proc) Stop() {
	p.once.Do(func() {
		if p.Cmd.Process == nil {
			return
		}
		pid := p.Cmd.Process.Pid
		_ = syscall.Kill(-pid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(3 * time.Second):
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			<-p.done
		}
	})
}

// Start starts argv inside the namespace in its own process group; the process is stopped by PID when
// the test ends. extraEnv is appended to the test's environment.
func (ns *Netns) Start(name string, extraEnv []string, argv ...string) *Proc {
	ns.t.Helper()
	cmd := ns.Command(argv...)
	return ns.StartCmd(name, cmd, extraEnv)
}

// StartCmd starts a prepared command (which must enter the namespace itself) and registers it for
// cleanup with the namespace. It is forked from the namespace's spawner thread, so it dies with the
// test process (Pdeathsig) but not with whichever goroutine's thread asked for it.
func (ns *Netns) StartCmd(name string, cmd *exec.Cmd, extraEnv []string) *Proc {
	ns.t.Helper()
	buf := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = buf, buf
	cmd.Env = append(os.Environ(), extraEnv...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := ns.spawn.start(cmd); err != nil {
		ns.t.Fatalf("start %s in netns %s: %v", name, ns.Name, err)
	}
	p := &Proc{Name: name, Cmd: cmd, out: buf, done: make(chan struct{})}
	go func() { p.waitErr = cmd.Wait(); close(p.done) }()
	ns.mu.Lock()
	ns.proc = append(ns.proc, p)
	ns.mu.Unlock()
	return p
}

// Veth creates a veth pair with one end (aName) in ns and the other (bName) in peer, both up.
func (ns *Netns) Veth(aName string, peer *Netns, bName string) {
	ns.t.Helper()
	ns.MustRun("ip", "link", "add", aName, "type", "veth", "peer", "name", bName, "netns", peer.Name)
	ns.MustRun("ip", "link", "set", aName, "up")
	peer.MustRun("ip", "link", "set", bName, "up")
}

// WaitFor polls cond every interval until it returns true or the deadline passes; it returns the last
// error cond gave. Used for readiness of daemons, with generous deadlines, never fixed sleeps.
func WaitFor(timeout, interval time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		last = err
		if time.Now().After(deadline) {
			if last == nil {
				last = fmt.Errorf("condition not met")
			}
			return fmt.Errorf("after %s: %w", timeout, last)
		}
		time.Sleep(interval)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
