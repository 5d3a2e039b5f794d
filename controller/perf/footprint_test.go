package perf

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
	"github.com/kvmnet/kvmnet/scripts/lab/testenv"
)

// procStatus reads a "Key:  N kB" (or plain N) field summed over the given /proc/PID/status-like
// files.
func procField(tb testing.TB, path, key string) int64 {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("read %s: %v", path, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == key {
			f := strings.Fields(v)
			n, _ := strconv.ParseInt(f[0], 10, 64)
			return n
		}
	}
	tb.Fatalf("%s: no %s", path, key)
	return 0
}

// rssKB is VmRSS of pid.
func rssKB(tb testing.TB, pid int) int64 {
	return procField(tb, fmt.Sprintf("/proc/%d/status", pid), "VmRSS")
}

// switches is the number of context switches (voluntary + involuntary) of every thread of pid: each
// wakeup of a sleeping thread is one voluntary switch when it sleeps again.
func switches(tb testing.TB, pid int) int64 {
	tb.Helper()
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	if err != nil || len(tasks) == 0 {
		tb.Fatalf("threads of %d: %v", pid, err)
	}
	var n int64
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue // thread ended
		}
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && (k == "voluntary_ctxt_switches" || k == "nonvoluntary_ctxt_switches") {
				x, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				n += x
			}
		}
	}
	return n
}

// cpuTicks is utime+stime of pid in clock ticks.
func cpuTicks(tb testing.TB, pid int) int64 {
	tb.Helper()
	d, err := testenv.ProcessCPU(pid)
	if err != nil {
		tb.Fatal(err)
	}
	return int64(d / testenv.ClockTick)
}

// idleWakeups counts pid's context switches and CPU ticks over d, and the seconds in which any
// switch happened (wakeup events: one wakeup of a sleeping agent costs a few switches), and logs the
// switches per second.
func idleWakeups(tb testing.TB, what string, pid int, d time.Duration) (sw, ticks, events int64) {
	s0, c0 := switches(tb, pid), cpuTicks(tb, pid)
	var series []string
	prev := s0
	for end := time.Now().Add(d); time.Now().Before(end); {
		time.Sleep(time.Second)
		n := switches(tb, pid)
		if n > prev {
			events++
		}
		series = append(series, strconv.FormatInt(n-prev, 10))
		prev = n
	}
	tb.Logf("%s: context switches per second: %s", what, strings.Join(series, " "))
	return switches(tb, pid) - s0, cpuTicks(tb, pid) - c0, events
}

// BenchmarkAgentFootprint runs the built static kvmnet-agent (KVMNET_AGENT_BIN, default
// bin/kvmnet-agent) in a throwaway network namespace with --listen unix:... and its root in a temp
// dir, NetworkManager's bus a private dbus-daemon (no NetworkManager on it), and measures:
// binary size, RSS idle and with a Watch stream open, context switches and CPU over 20 s idle
// (with and without a Watch, from a client that sends no keepalive pings), RSS after 200
// sequential GetState calls, peak RSS during 100 concurrent callers, and RSS once they are done.
// KVMNET_IDLE sets the idle window (default 130s: long enough to show the Go runtime's own periodic
// work, sysmon's 60 s sleep and the forced GC every 2 min, next to kvmnet's none).
func BenchmarkAgentFootprint(b *testing.B) {
	testenv.Require(b, "ip", "dbus-daemon")
	bin := binary(b, "KVMNET_AGENT_BIN", "kvmnet-agent")
	idle := 130 * time.Second
	if v := os.Getenv("KVMNET_IDLE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("KVMNET_IDLE: %v", err)
		}
		idle = d
	}
	fi, err := os.Stat(bin)
	if err != nil {
		b.Fatal(err)
	}
	for range b.N {
		ns := testenv.NewNetns(b, "pf")
		bus := testenv.StartBus(b, ns)
		dir := b.TempDir()
		root := filepath.Join(dir, "root")
		for _, d := range []string{"etc", "var/lib/kvmnet", "proc/sys/net/ipv6/conf/all"} {
			if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
				b.Fatal(err)
			}
		}
		sock := filepath.Join(dir, "agent.sock")
		cfg := filepath.Join(dir, "agent.yaml")
		if err := os.WriteFile(cfg, []byte("root: "+root+"\nallow_apply: false\nlog_level: warn\n"), 0o644); err != nil {
			b.Fatal(err)
		}
		env := []string{"DBUS_SYSTEM_BUS_ADDRESS=" + bus.Address}
		if e := os.Getenv("KVMNET_AGENT_ENV"); e != "" { // experiments: "GOGC=50 GOMEMLIMIT=8MiB"
			env = append(env, strings.Fields(e)...)
		}
		p := ns.Start("kvmnet-agent", env,
			bin, "--config", cfg, "--listen", "unix:"+sock)
		pid := p.Cmd.Process.Pid
		if err := testenv.WaitFor(10*time.Second, 50*time.Millisecond, func() (bool, error) {
			_, err := os.Stat(sock)
			return err == nil, nil
		}); err != nil {
			b.Fatalf("agent socket never appeared: %v\n%s", err, p.Output())
		}
		time.Sleep(2 * time.Second)
		rssStart := rssKB(b, pid)
		swIdle, cpuIdle, evIdle := idleWakeups(b, "idle, no client", pid, idle)

		// A client without keepalive pings: what wakes the agent is the agent's own doing.
		cc, err := grpc.NewClient("unix:"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = cc.Close() })
		c := kvmnetv1.NewAgentClient(cc)
		wctx, wcancel := context.WithCancel(context.Background())
		b.Cleanup(wcancel)
		w, err := c.Watch(wctx, &kvmnetv1.WatchRequest{})
		if err != nil {
			b.Fatal(err)
		}
		go func() {
			for {
				if _, err := w.Recv(); err != nil {
					return
				}
			}
		}()
		if _, err := c.GetState(context.Background(), &kvmnetv1.GetStateRequest{}, grpc.WaitForReady(true)); err != nil {
			b.Fatalf("GetState: %v\n%s", err, p.Output())
		}
		time.Sleep(5 * time.Second) // past the idle memory release (2 s after the last RPC)
		rssWatch := rssKB(b, pid)
		stPath := fmt.Sprintf("/proc/%d/status", pid)
		watchAnon, watchFile := procField(b, stPath, "RssAnon"), procField(b, stPath, "RssFile")
		swWatch, cpuWatch, evWatch := idleWakeups(b, "idle, Watch open", pid, idle)
		rssWatchIdle := rssKB(b, pid)

		for range 200 {
			if _, err := c.GetState(context.Background(), &kvmnetv1.GetStateRequest{}); err != nil {
				b.Fatal(err)
			}
		}
		rss200 := rssKB(b, pid)

		// 100 concurrent callers, 20 GetState each, RSS sampled every 5 ms.
		var peak atomic.Int64
		stop := make(chan struct{})
		var sampler sync.WaitGroup
		sampler.Add(1)
		go func() {
			defer sampler.Done()
			t := time.NewTicker(5 * time.Millisecond)
			defer t.Stop()
			for {
				if r := rssKB(b, pid); r > peak.Load() {
					peak.Store(r)
				}
				select {
				case <-stop:
					return
				case <-t.C:
				}
			}
		}()
		var wg sync.WaitGroup
		var errs atomic.Int64
		t0 := time.Now()
		for range 100 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 20 {
					if _, err := c.GetState(context.Background(), &kvmnetv1.GetStateRequest{}); err != nil {
						errs.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		burst := time.Since(t0)
		close(stop)
		sampler.Wait()
		if errs.Load() > 0 {
			b.Errorf("%d of 2000 concurrent GetState calls failed", errs.Load())
		}
		time.Sleep(5 * time.Second)
		rssAfter := rssKB(b, pid)
		st := fmt.Sprintf("/proc/%d/status", pid)
		anon, file := procField(b, st, "RssAnon"), procField(b, st, "RssFile")

		mb := func(kb int64) float64 { return float64(kb) / 1024 }
		b.ReportMetric(float64(fi.Size())/1e6, "binary-MB")
		b.ReportMetric(mb(rssStart), "rss-idle-MiB")
		b.ReportMetric(mb(rssWatch), "rss-watch-MiB")
		b.ReportMetric(mb(rssWatchIdle), "rss-watch-after-idle-MiB")
		b.ReportMetric(mb(watchAnon), "rss-watch-anon-MiB")
		b.ReportMetric(mb(watchFile), "rss-watch-file-MiB")
		b.ReportMetric(float64(swIdle), "switches-idle")
		b.ReportMetric(float64(swWatch), "switches-watch-idle")
		b.ReportMetric(float64(evIdle), "wakeups-idle")
		b.ReportMetric(float64(evWatch), "wakeups-watch-idle")
		b.ReportMetric(float64(cpuIdle+cpuWatch), "cpu-ticks-idle")
		b.ReportMetric(mb(rss200), "rss-after-200-MiB")
		b.ReportMetric(mb(peak.Load()), "rss-peak-100conc-MiB")
		b.ReportMetric(mb(rssAfter), "rss-after-burst-MiB")
		b.ReportMetric(mb(anon), "rss-after-burst-anon-MiB")
		b.ReportMetric(mb(file), "rss-after-burst-file-MiB")
		b.ReportMetric(float64(burst.Milliseconds()), "burst-2000-ms")
		b.ReportMetric(idle.Seconds(), "idle-window-s")
		b.Logf("agent pid %d threads %d; log:\n%s", pid, procField(b, fmt.Sprintf("/proc/%d/status", pid), "Threads"), p.Output())
		wcancel()
		_ = cc.Close()
		p.Stop()
	}
}
