package perf

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// rssKiB reads VmRSS of pid.
func rssKiB(tb testing.TB, pid int) float64 {
	tb.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		tb.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			v, _ := strconv.ParseFloat(f[1], 64)
			return v
		}
	}
	tb.Fatal("no VmRSS")
	return 0
}

// BenchmarkExporterScrape runs `kvmnetctl exporter` (the built binary, loopback listener) over the
// same emulated fleet as BenchmarkStatusFanout and scrapes /metrics with Prometheus' timeout
// header. Metrics: ms/scrape for 100 guests (5 workers, the default), idle RSS before the first
// scrape and RSS after the scrapes.
func BenchmarkExporterScrape(b *testing.B) {
	ctl := binary(b, "KVMNETCTL", "kvmnetctl")
	const n = 100
	uri, _ := fleet(b, n, -1)
	cmd := exec.Command(ctl, "-c", uri, "exporter", "--listen", "127.0.0.1:0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stderr).ReadString('\n')
	if err != nil {
		b.Fatalf("exporter did not say where it listens: %v", err)
	}
	go func() { _, _ = io.Copy(io.Discard, stderr) }()
	url := strings.TrimSpace(line[strings.Index(line, "http://"):])
	time.Sleep(2 * time.Second) // idle: nothing runs until the first scrape
	idle := rssKiB(b, cmd.Process.Pid)
	scrape := func() (time.Duration, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", "10")
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return time.Since(start), string(body)
	}
	scrape() // warm the page cache and the agents
	b.ResetTimer()
	var total time.Duration
	var body string
	for range b.N {
		el, bd := scrape()
		total += el
		body = bd
	}
	b.StopTimer()
	if got := strings.Count(body, "kvmnet_guest_agent_reachable{") - strings.Count(body, `transport="virtio-serial"} 0`); got != n ||
		!strings.Contains(body, "kvmnet_up 1\n") {
		b.Fatalf("%d of %d guests reachable in the scrape:\n%.2000s", got, n, body)
	}
	b.ReportMetric(float64(total.Microseconds())/1e3/float64(b.N), "ms/scrape")
	b.ReportMetric(float64(n), "guests")
	b.ReportMetric(idle/1024, "rss-idle-MiB")
	b.ReportMetric(rssKiB(b, cmd.Process.Pid)/1024, "rss-after-MiB")
}
