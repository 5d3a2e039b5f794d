package exporter

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/kvmnet/kvmnet/controller/checks"
	"github.com/kvmnet/kvmnet/controller/snapshot"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
	"github.com/kvmnet/kvmnet/scripts/lab/testenv/goldenfile"
)

const (
	mac1, mac2, mac3, mac4 = "52:54:00:00:00:01", "52:54:00:00:00:02", "52:54:00:00:00:03", "52:54:00:00:00:04"
)

// fixedSnapshot: network "default" active with web (healthy, checks pass), db (agent up, no IPv4,
// no lease), hung (agent timed out), bare (no agent channel); network "lab" defined but inactive.
func fixedSnapshot() snapshot.Snapshot {
	v4 := kvmnetv1.Family_FAMILY_V4
	res := func(name string, kind kvmnetv1.CheckKind, target string, ok bool, us uint64) *kvmnetv1.CheckResult {
		return &kvmnetv1.CheckResult{Check: &kvmnetv1.Check{Name: name, Kind: kind, Target: target, Family: v4}, Ok: ok, LatencyUs: us}
	}
	state := func(host string, ifs ...*kvmnetv1.Interface) *kvmnetv1.GuestState {
		st := &kvmnetv1.GuestState{Hostname: host, AgentVersion: "1.0", Interfaces: ifs, Ipv6: &kvmnetv1.IPv6State{AllDisabled: true},
			Config:         &kvmnetv1.AgentConfig{AllowApply: true},
			NetworkManager: &kvmnetv1.NetworkManagerState{Running: true, Version: "1.42"}}
		for _, i := range ifs {
			if i.DefaultRouteV4 {
				st.Routes = append(st.Routes, &kvmnetv1.Route{Family: 4, Destination: "default", Gateway: "192.168.122.1", Interface: i.Name})
			}
		}
		return st
	}
	nic := func(mac snapshot.MAC, vnet string) snapshot.DomainNIC {
		return snapshot.DomainNIC{MAC: mac, Type: "network", Network: "default", Bridge: "virbr0", Target: vnet, Model: "virtio", LinkState: "up"}
	}
	ch := func(name string) []snapshot.Channel {
		return []snapshot.Channel{{Name: snapshot.ChannelKvmnet, Type: "unix", Path: "/run/kvmnet/" + name + ".sock", State: "connected"}}
	}
	t0 := time.Date(2026, 12, 4, 1, 0, 0, 0, time.UTC)
	return snapshot.Snapshot{
		URI: "qemu:///system", TakenAt: t0,
		Networks: []snapshot.Network{
			{Name: "default", UUID: "u1", Active: true, Autostart: true, Persistent: true, Forward: snapshot.ForwardNAT, Bridge: "virbr0",
				DNSEnabled: true, LeasesSupported: true,
				IPs: []snapshot.NetworkIP{{Family: 4, Address: "192.168.122.1", Prefix: 24, Subnet: "192.168.122.0/24",
					DHCPRanges: []snapshot.DHCPRange{{Start: "192.168.122.2", End: "192.168.122.254"}}}},
				Leases: []snapshot.Lease{{MAC: mac1, IP: "192.168.122.10", Prefix: 24, Family: 4, Expiry: t0.Add(time.Hour)}}},
			{Name: "lab", UUID: "u2", Active: false, Autostart: true, Persistent: true, Forward: snapshot.ForwardIsolated, Bridge: "virbr9"},
		},
		Domains: []snapshot.Domain{
			{Name: "web", State: "running", NICs: []snapshot.DomainNIC{nic(mac1, "vnet0")}, Channels: ch("web")},
			{Name: "db", State: "running", NICs: []snapshot.DomainNIC{nic(mac2, "vnet1")}, Channels: ch("db")},
			{Name: "hung", State: "running", NICs: []snapshot.DomainNIC{nic(mac3, "vnet2")}, Channels: ch("hung")},
			{Name: "bare", State: "running", NICs: []snapshot.DomainNIC{nic(mac4, "vnet3")}},
		},
		Host: snapshot.Host{Read: true, IPForward: true, IPForwardKnown: true, Uplink: "eth0",
			Bridges: []snapshot.Bridge{{Name: "virbr0", OperState: "up", AdminUp: true, Addresses: []string{"192.168.122.1/24"},
				Ports: []string{"vnet0", "vnet1", "vnet2", "vnet3"}}},
			Dnsmasq: map[string]snapshot.DnsmasqStatus{"default": {Running: true, PID: 10, AnswersDNS: true, Checked: true}}},
		Firewall: snapshot.Firewall{Read: true, Backend: "iptables-nft", LibvirtChains: []string{"LIBVIRT_FWI", "LIBVIRT_FWO", "LIBVIRT_FWX", "LIBVIRT_INP", "LIBVIRT_OUT", "LIBVIRT_PRT"},
			ForwardPolicy: "ACCEPT", Masquerade: []string{"192.168.122.0/24"},
			Flows: []snapshot.Flow{
				{Network: "default", Kind: "egress", Verdict: snapshot.VerdictAccept, Chain: "LIBVIRT_FWO", Rule: "-A LIBVIRT_FWO -j ACCEPT"},
				{Network: "default", Kind: "dhcp", Verdict: snapshot.VerdictAccept, Chain: "LIBVIRT_INP", Rule: "-A LIBVIRT_INP -j ACCEPT"},
				{Network: "default", Kind: "dns", Verdict: snapshot.VerdictAccept, Chain: "LIBVIRT_INP", Rule: "-A LIBVIRT_INP -j ACCEPT"},
			}},
		Guests: []snapshot.Guest{
			{Domain: "web", Transport: snapshot.TransportVirtioSerial, Address: "serial:/run/kvmnet/web.sock", Reachable: true,
				State: state("web", &kvmnetv1.Interface{Name: "enp1s0", Mac: mac1, OperState: "up", Carrier: true,
					Ipv4: []string{"192.168.122.10/24"}, DefaultRouteV4: true}),
				Checks: []*kvmnetv1.CheckResult{
					res(checks.GatewayV4, kvmnetv1.CheckKind_CHECK_KIND_PING, "192.168.122.1", true, 1500),
					res(checks.DNSV4, kvmnetv1.CheckKind_CHECK_KIND_DNS, "deb.debian.org", true, 12000),
					res(checks.EgressV4, kvmnetv1.CheckKind_CHECK_KIND_TCP, "deb.debian.org:80", true, 30000),
					res(checks.EgressV4, kvmnetv1.CheckKind_CHECK_KIND_TCP, "203.0.113.1:443", true, 45000),
					// A name the controller never asks for: the guest's invention, never a series.
					res("evil\x00name", kvmnetv1.CheckKind_CHECK_KIND_TCP, "x", true, 1),
				}},
			{Domain: "db", Transport: snapshot.TransportVirtioSerial, Address: "serial:/run/kvmnet/db.sock", Reachable: true,
				State: state("db", &kvmnetv1.Interface{Name: "ens3\xff\x1b[31m", Mac: mac2, OperState: "up", Carrier: true})},
			{Domain: "hung", Transport: snapshot.TransportVirtioSerial, Address: "serial:/run/kvmnet/hung.sock", TimedOut: true,
				Error: "no answer within 5s: context deadline exceeded"},
			{Domain: "bare", Transport: snapshot.TransportNone},
		},
	}
}

func fixedExporter(s snapshot.Snapshot, err error) *Exporter {
	clock := time.Date(2026, 12, 4, 1, 0, 0, 0, time.UTC)
	return New(SourceFunc(func(context.Context, time.Duration) (snapshot.Snapshot, error) { return s, err }),
		Options{Version: "1.2.3", Now: func() time.Time { clock = clock.Add(250 * time.Millisecond); return clock }})
}

func scrape(t *testing.T, e *Exporter, header http.Header) []byte {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "text/plain")
	rec := httptest.NewRecorder()
	e.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	return rec.Body.Bytes()
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	goldenfile.Check(t, filepath.Join("testdata", name), got)
}

// stable removes the one value that depends on the toolchain.
func stable(b []byte) []byte {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "kvmnet_build_info{") {
			l = `kvmnet_build_info{goversion="GO",version="1.2.3"} 1`
		}
		out = append(out, l)
	}
	return []byte(strings.Join(out, "\n"))
}

func TestGoldenExposition(t *testing.T) {
	body := scrape(t, fixedExporter(fixedSnapshot(), nil), nil)
	golden(t, "metrics.prom", stable(body))
	for _, want := range []string{
		`kvmnet_up 1`,
		`kvmnet_guest_timed_out{domain="hung"} 1`,
		`kvmnet_guest_agent_reachable{domain="hung",transport="virtio-serial"} 0`,
		`kvmnet_guest_healthy{domain="web"} 1`,
		`kvmnet_network_active{network="lab"} 0`,
		`kvmnet_check_success{check="egress-v4",domain="web"} 1`,
		`kvmnet_check_duration_seconds{check="egress-v4",domain="web"} 0.045`,
		`kvmnet_guest_nic_info{bridge="virbr0",domain="web",guest_ifname="enp1s0",mac="52:54:00:00:00:01",network="default",target_device="vnet0"} 1`,
	} {
		if !bytes.Contains(body, []byte(want+"\n")) {
			t.Errorf("exposition lacks %q", want)
		}
	}
	if bytes.Contains(body, []byte("evil")) || bytes.Contains(body, []byte("\x1b")) || !utf8.Valid(body) {
		t.Errorf("guest-controlled junk reached the exposition")
	}
	if !bytes.Contains(body, []byte(`kvmnet_finding{code="guest_no_ipv4",domain="db",mac="52:54:00:00:00:02",network="default",severity="error"} 1`)) {
		t.Errorf("no guest_no_ipv4 finding for db:\n%s", body)
	}
}

// promtool (Debian's prometheus package, scripts/install-deps.sh) lints the exposition.
func TestPromtoolCheckMetrics(t *testing.T) {
	tool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: install Debian's prometheus package (bash scripts/install-deps.sh)")
	}
	body := scrape(t, fixedExporter(fixedSnapshot(), nil), nil)
	cmd := exec.Command(tool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

func TestSanitize(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"plain", "enp1s0", "enp1s0"},
		{"invalid utf8", "a\xffb", "a\uFFFDb"},
		{"control", "a\x1b[31mb\n", "a?[31mb?"},
		{"long", strings.Repeat("x", 300), strings.Repeat("x", MaxLabelLen)},
		{"long multibyte cut on a rune", strings.Repeat("é", 100), strings.Repeat("é", MaxLabelLen/2)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := sanitize(tc.in)
			if got != tc.want || !utf8.ValidString(got) || len(got) > MaxLabelLen {
				t.Errorf("sanitize(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestBudget(t *testing.T) {
	e := New(nil, Options{Timeout: 10 * time.Second, Margin: 500 * time.Millisecond})
	for _, tc := range []struct {
		name, header string
		want         time.Duration
	}{
		{"none announced", "", 10 * time.Second},
		{"announced 5", "5", 4500 * time.Millisecond},
		{"announced fraction", "2.5", 2 * time.Second},
		{"short: margin at most a quarter", "1", 750 * time.Millisecond},
		{"longer than the cap", "60", 10 * time.Second},
		{"garbage", "abc", 10 * time.Second},
		{"negative", "-3", 10 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.header != "" {
				h.Set("X-Prometheus-Scrape-Timeout-Seconds", tc.header)
			}
			if got := e.Budget(h); got != tc.want {
				t.Errorf("Budget(%q) = %s, want %s", tc.header, got, tc.want)
			}
		})
	}
}

// A source that ignores its context (stuck libvirt) does not stall the scrape: it answers at the
// budget with kvmnet_up 0; a source that fails says kvmnet_up 0 too, with status 200.
func TestStuckOrFailingSource(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	var gotGuestTimeout atomic.Int64
	stuck := New(SourceFunc(func(_ context.Context, gt time.Duration) (snapshot.Snapshot, error) {
		gotGuestTimeout.Store(int64(gt))
		<-release
		return snapshot.Snapshot{}, nil
	}), Options{GuestTimeout: 5 * time.Second})
	start := time.Now()
	body := scrape(t, stuck, http.Header{"X-Prometheus-Scrape-Timeout-Seconds": {"1"}})
	el := time.Since(start)
	if !bytes.Contains(body, []byte("kvmnet_up 0\n")) || !bytes.Contains(body, []byte("kvmnet_scrape_deadline_seconds 0.75\n")) {
		t.Errorf("stuck source exposition:\n%s", body)
	}
	if el < 700*time.Millisecond || el > 3*time.Second {
		t.Errorf("stuck scrape answered after %s, want at its 0.75 s budget", el)
	}
	if got := time.Duration(gotGuestTimeout.Load()); got != 750*time.Millisecond {
		t.Errorf("guest timeout given to the source = %s, want the budget 750ms (smaller than GuestTimeout)", got)
	}
	body = scrape(t, fixedExporter(snapshot.Snapshot{}, errors.New("libvirt: connection refused")), nil)
	if !bytes.Contains(body, []byte("kvmnet_up 0\n")) || bytes.Contains(body, []byte("connection refused")) {
		t.Errorf("failing source exposition:\n%s", body)
	}
}

func TestTextfile(t *testing.T) {
	dir := t.TempDir()
	e := fixedExporter(fixedSnapshot(), nil)
	if _, err := e.WriteTextfile(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, TextfileName))
	if err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("parse %s: %v", TextfileName, err)
	}
	if fams["kvmnet_up"].GetMetric()[0].GetGauge().GetValue() != 1 || len(fams["kvmnet_guest_healthy"].GetMetric()) != 4 {
		t.Errorf("textfile content:\n%s", b)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("dir holds %d entries, want only %s (no temporary file left)", len(ents), TextfileName)
	}
	if _, err := e.WriteTextfile(context.Background(), filepath.Join(dir, "missing")); err == nil {
		t.Error("WriteTextfile into a missing directory succeeded")
	}
}
