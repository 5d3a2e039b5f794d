package fleet

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kvmnet/kvmnet/controller/diagnose"
)

// Query asks one host for its report (guests status) within ctx. exit is the remote kvmnetctl's
// exit status (1: findings); err means the host gave no usable report.
type Query func(ctx context.Context, host string) (r diagnose.Report, exit int, err error)

// Host is one row: a host's summary, or why it has none.
type Host struct {
	// Host as given on the command line.
	Host string `json:"host"`
	// Reachable is true when the host answered with a report.
	Reachable bool `json:"reachable"`
	// Error says why not (ssh failure, deadline, unparsable answer).
	Error string `json:"error,omitempty"`
	// Guests is the number of domains; Unhealthy those with error-level findings.
	Guests    int `json:"guests"`
	Unhealthy int `json:"unhealthy"`
	// Codes are the distinct codes of error-level findings, sorted.
	Codes []diagnose.Code `json:"codes"`
	// Report is the host's full report (absent when unreachable).
	Report *diagnose.Report `json:"report,omitempty"`
	// DurationMS is how long the host took to answer.
	DurationMS float64 `json:"duration_ms"`
}

// Report is every host's row, in the order given.
type Report struct {
	Hosts []Host `json:"hosts"`
}

// Status queries every host concurrently (at most workers at once), each within perHost.
func Status(ctx context.Context, hosts []string, perHost time.Duration, workers int, q Query) Report {
	out := Report{Hosts: make([]Host, len(hosts))}
	if workers <= 0 {
		workers = len(hosts)
	}
	sem := make(chan struct{}, max(workers, 1))
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			out.Hosts[i] = one(ctx, h, perHost, q)
		}()
	}
	wg.Wait()
	return out
}

func one(ctx context.Context, host string, perHost time.Duration, q Query) Host {
	row := Host{Host: host, Codes: []diagnose.Code{}}
	ctx, cancel := context.WithTimeout(ctx, perHost)
	defer cancel()
	start := time.Now()
	type res struct {
		r    diagnose.Report
		exit int
		err  error
	}
	ch := make(chan res, 1)
	go func() {
		r, exit, err := q(ctx, host)
		ch <- res{r, exit, err}
	}()
	var got res
	select {
	case got = <-ch:
	case <-ctx.Done():
		got.err = fmt.Errorf("no answer within %s", perHost)
	}
	row.DurationMS = float64(time.Since(start).Microseconds()) / 1000
	if got.err != nil {
		row.Error = got.err.Error()
		return row
	}
	row.Reachable = true
	row.Report = &got.r
	row.Guests = len(got.r.Guests)
	for _, g := range got.r.Guests {
		if !g.Healthy {
			row.Unhealthy++
		}
	}
	for _, f := range got.r.All() {
		if f.Severity == diagnose.SeverityError && !slices.Contains(row.Codes, f.Code) {
			row.Codes = append(row.Codes, f.Code)
		}
	}
	slices.Sort(row.Codes)
	return row
}

// Healthy reports whether every host answered with no error-level finding.
func (r Report) Healthy() bool {
	for _, h := range r.Hosts {
		if !h.Reachable || len(h.Codes) > 0 {
			return false
		}
	}
	return true
}

// Headers are the table's columns.
func (r Report) Headers() []string {
	return []string{"HOST", "STATUS", "GUESTS", "UNHEALTHY", "ERROR CODES", "TIME"}
}

// Rows are one per host. Remote text (an error) is only ever in the last columns and was made
// printable by the query.
func (r Report) Rows() [][]string {
	var rows [][]string
	for _, h := range r.Hosts {
		ms := strconv.FormatFloat(h.DurationMS, 'f', 0, 64) + "ms"
		if !h.Reachable {
			rows = append(rows, []string{h.Host, "unreachable", "-", "-", h.Error, ms})
			continue
		}
		status, codes := "ok", "-"
		if len(h.Codes) > 0 {
			status = "errors"
			var cs []string
			for _, c := range h.Codes {
				cs = append(cs, string(c))
			}
			codes = strings.Join(cs, ",")
		}
		rows = append(rows, []string{h.Host, status, strconv.Itoa(h.Guests), strconv.Itoa(h.Unhealthy), codes, ms})
	}
	return rows
}

// Summary is the line under the table.
func (r Report) Summary() string {
	down, bad := 0, 0
	for _, h := range r.Hosts {
		switch {
		case !h.Reachable:
			down++
		case len(h.Codes) > 0:
			bad++
		}
	}
	return fmt.Sprintf("%d hosts: %d unreachable, %d with error-level findings", len(r.Hosts), down, bad)
}
