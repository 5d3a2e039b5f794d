package exporter

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kvmnet/kvmnet/controller/diagnose"
	"github.com/kvmnet/kvmnet/controller/snapshot"
)

// Source reads one snapshot of the host. ctx bounds the whole collection; guestTimeout bounds each
// guest. It is the exporter's only way to the world: it gets GetState/RunChecks answers, never a
// client that can change a guest.
type Source interface {
	Snapshot(ctx context.Context, guestTimeout time.Duration) (snapshot.Snapshot, error)
}

// SourceFunc adapts a function to Source.
type SourceFunc func(ctx context.Context, guestTimeout time.Duration) (snapshot.Snapshot, error)

// Snapshot calls f.
func (f SourceFunc) Snapshot(ctx context.Context, guestTimeout time.Duration) (snapshot.Snapshot, error) {
	return f(ctx, guestTimeout)
}

// Defaults of Options.
const (
	// DefaultPort is kvmnetctl exporter's port: outside the 9100-9999 range of Prometheus' default
	// port allocations wiki, and not 9177 (taken by libvirt exporters).
	DefaultPort = 10077
	// DefaultTimeout is the scrape budget when the scraper announces none (Prometheus' default
	// scrape_timeout is 10 s).
	DefaultTimeout = 10 * time.Second
	// DefaultMargin is kept back from the announced timeout for diagnosis, encoding and the network.
	DefaultMargin = 500 * time.Millisecond
	// DefaultGuestTimeout bounds one guest's GetState + checks.
	DefaultGuestTimeout = 5 * time.Second
)

// Options configure an Exporter.
type Options struct {
	// Version goes into kvmnet_build_info.
	Version string
	// Timeout is the budget when the scrape request announces none; also the upper bound of an
	// announced one. Default DefaultTimeout.
	Timeout time.Duration
	// Margin is subtracted from the announced timeout (default DefaultMargin, at most a quarter of it).
	Margin time.Duration
	// GuestTimeout bounds each guest (default DefaultGuestTimeout); never more than the budget.
	GuestTimeout time.Duration
	// Now is the clock (tests).
	Now func() time.Time
}

// Exporter collects on every scrape.
type Exporter struct {
	src  Source
	opts Options
}

// New returns an Exporter reading from src.
func New(src Source, opts Options) *Exporter {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Margin <= 0 {
		opts.Margin = DefaultMargin
	}
	if opts.GuestTimeout <= 0 {
		opts.GuestTimeout = DefaultGuestTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Exporter{src: src, opts: opts}
}

// Budget is the time a scrape may take: the scraper's announced timeout (header
// X-Prometheus-Scrape-Timeout-Seconds) minus the margin, or Options.Timeout when none is announced
// or it is larger. The margin never eats more than a quarter of a short timeout.
func (e *Exporter) Budget(h http.Header) time.Duration {
	budget := e.opts.Timeout
	if v := h.Get("X-Prometheus-Scrape-Timeout-Seconds"); v != "" {
		if f, err := strconv.ParseFloat(v, 64); err == nil && f > 0 {
			announced := time.Duration(f * float64(time.Second))
			budget = min(budget, announced-min(e.opts.Margin, announced/4))
		}
	}
	return budget
}

// Collect gathers one Result within budget. A Source that overruns its context (a stuck libvirt)
// is abandoned at the deadline: the result then says kvmnet_up 0 instead of failing the scrape.
func (e *Exporter) Collect(ctx context.Context, budget time.Duration) Result {
	start := e.opts.Now()
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	type out struct {
		s   snapshot.Snapshot
		err error
	}
	ch := make(chan out, 1)
	gt := min(e.opts.GuestTimeout, budget)
	go func() {
		s, err := e.src.Snapshot(ctx, gt)
		ch <- out{s, err}
	}()
	res := Result{Deadline: budget}
	select {
	case o := <-ch:
		res.Snapshot, res.Err = o.s, o.err
		if o.err == nil {
			res.Report = diagnose.Diagnose(o.s)
		}
	case <-ctx.Done():
		res.Err = fmt.Errorf("collection did not finish within %s: %w", budget, ctx.Err())
	}
	res.Duration = e.opts.Now().Sub(start)
	return res
}

// Registry returns a registry holding res (one per scrape: the series are those of that moment).
func (e *Exporter) Registry(res Result) *prometheus.Registry {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(resultCollector{res: res, version: e.opts.Version})
	return reg
}

// ServeHTTP collects within the scrape's budget and writes the exposition. The status is 200 even
// when libvirt could not be read (kvmnet_up 0 says so), so alerting sees the cause, not a scrape
// failure.
func (e *Exporter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	res := e.Collect(r.Context(), e.Budget(r.Header))
	if res.Err != nil && errors.Is(r.Context().Err(), context.Canceled) {
		return // the scraper went away
	}
	promhttp.HandlerFor(e.Registry(res), promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}).ServeHTTP(w, r)
}

// Handler is the exporter's HTTP mux: /metrics, and a small index page at /.
func (e *Exporter) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", e)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = fmt.Fprint(w, "<html><head><title>kvmnet exporter</title></head><body><h1>kvmnet exporter</h1>"+
			"<p><a href=\"/metrics\">Metrics</a></p></body></html>\n")
	})
	return mux
}
