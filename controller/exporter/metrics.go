package exporter

import (
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kvmnet/kvmnet/controller/checks"
	"github.com/kvmnet/kvmnet/controller/diagnose"
	"github.com/kvmnet/kvmnet/controller/snapshot"
)

// Metric descriptors. Names follow Prometheus conventions: base units, _info for metadata, no host
// label (the target is the host); domain and target_device join with the libvirt exporters.
var (
	descUp = prometheus.NewDesc("kvmnet_up",
		"1 when libvirt could be read in this scrape, 0 otherwise (the guest, network and finding series are then absent).", nil, nil)
	descBuild = prometheus.NewDesc("kvmnet_build_info",
		"Build of the kvmnetctl exporter.", []string{"version", "goversion"}, nil)
	descDuration = prometheus.NewDesc("kvmnet_scrape_duration_seconds",
		"Time this scrape took to collect and diagnose.", nil, nil)
	descDeadline = prometheus.NewDesc("kvmnet_scrape_deadline_seconds",
		"Time budget of this scrape (the scraper's timeout minus the margin).", nil, nil)
	descErrors = prometheus.NewDesc("kvmnet_collection_errors",
		"Problems met while collecting (libvirt objects, host sources); the rest is still valid.", nil, nil)
	descFinding = prometheus.NewDesc("kvmnet_finding",
		"1 per active finding; code is stable (docs/runbooks/<code>.md).",
		[]string{"code", "severity", "network", "domain", "mac"}, nil)
	descHealthy = prometheus.NewDesc("kvmnet_guest_healthy",
		"1 when the guest has no error-level finding of its own or of its networks.", []string{"domain"}, nil)
	descReachable = prometheus.NewDesc("kvmnet_guest_agent_reachable",
		"1 when the guest's kvmnet-agent answered GetState.", []string{"domain", "transport"}, nil)
	descTimedOut = prometheus.NewDesc("kvmnet_guest_timed_out",
		"1 when the guest did not answer within its deadline (hung agent or QEMU).", []string{"domain"}, nil)
	descNIC = prometheus.NewDesc("kvmnet_guest_nic_info",
		"One per domain NIC: the host's and the guest's names for it.",
		[]string{"domain", "mac", "network", "bridge", "target_device", "guest_ifname"}, nil)
	descNetActive = prometheus.NewDesc("kvmnet_network_active",
		"1 when the libvirt network is started.", []string{"network"}, nil)
	descCheckOK = prometheus.NewDesc("kvmnet_check_success",
		"1 when every connectivity check of that name succeeded in the guest.", []string{"domain", "check"}, nil)
	descCheckDur = prometheus.NewDesc("kvmnet_check_duration_seconds",
		"Longest run time of the guest's connectivity checks of that name.", []string{"domain", "check"}, nil)
)

var allDescs = []*prometheus.Desc{descUp, descBuild, descDuration, descDeadline, descErrors, descFinding,
	descHealthy, descReachable, descTimedOut, descNIC, descNetActive, descCheckOK, descCheckDur}

// knownChecks are the check names the controller asks for (controller/checks). A result under any
// other name is the guest's invention and is dropped, so a guest cannot add series.
var knownChecks = checks.Names()

// Result is what one scrape learned.
type Result struct {
	// Snapshot is what was collected; Report its diagnosis.
	Snapshot snapshot.Snapshot
	Report   diagnose.Report
	// Err is set when nothing meaningful could be collected (libvirt unreadable, deadline): kvmnet_up 0.
	Err error
	// Duration of collection plus diagnosis; Deadline the budget it had.
	Duration, Deadline time.Duration
}

// resultCollector exposes one Result as constant metrics (a fresh registry per scrape holds it).
type resultCollector struct {
	res     Result
	version string
}

// Describe sends every descriptor the collector may use.
func (c resultCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

// Collect emits the Result's series. Duplicate label sets (a finding reported twice, several egress
// targets under one check name) are merged here, because Prometheus rejects duplicate series.
func (c resultCollector) Collect(ch chan<- prometheus.Metric) {
	g := func(d *prometheus.Desc, v float64, labels ...string) {
		for i := range labels {
			labels[i] = sanitize(labels[i])
		}
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	g(descBuild, 1, c.version, runtime.Version())
	g(descDuration, c.res.Duration.Seconds())
	g(descDeadline, c.res.Deadline.Seconds())
	if c.res.Err != nil {
		g(descUp, 0)
		return
	}
	g(descUp, 1)
	r, s := c.res.Report, c.res.Snapshot
	g(descErrors, float64(len(r.Errors)))

	seen := map[string]bool{}
	for _, f := range r.All() {
		key := strings.Join([]string{string(f.Code), string(f.Severity), f.Network, f.Domain, string(f.MAC)}, "\x00")
		if seen[key] {
			continue
		}
		seen[key] = true
		g(descFinding, 1, string(f.Code), string(f.Severity), f.Network, f.Domain, string(f.MAC))
	}
	for _, n := range r.Networks {
		g(descNetActive, b2f(n.Active), n.Name)
	}
	for _, gr := range r.Guests {
		g(descHealthy, b2f(gr.Healthy), gr.Name)
		g(descReachable, b2f(gr.Agent.Reachable), gr.Name, gr.Agent.Transport)
		timedOut := false
		if sg, ok := s.FindGuest(gr.Name); ok {
			timedOut = sg.TimedOut
		}
		g(descTimedOut, b2f(timedOut), gr.Name)
		nics := map[snapshot.MAC]bool{}
		for _, n := range gr.NICs {
			if nics[n.MAC] {
				continue
			}
			nics[n.MAC] = true
			g(descNIC, 1, gr.Name, string(n.MAC), n.Network, n.Bridge, n.Vnet, n.GuestIfname)
		}
		type agg struct {
			ok  bool
			dur float64
		}
		checks := map[string]*agg{}
		var order []string
		for _, ck := range gr.Checks {
			if !slices.Contains(knownChecks, ck.Name) {
				continue
			}
			a, ok := checks[ck.Name]
			if !ok {
				a = &agg{ok: true}
				checks[ck.Name] = a
				order = append(order, ck.Name)
			}
			a.ok = a.ok && ck.OK
			a.dur = max(a.dur, ck.LatencyMS/1000)
		}
		for _, name := range order {
			g(descCheckOK, b2f(checks[name].ok), gr.Name, name)
			g(descCheckDur, checks[name].dur, gr.Name, name)
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
