// Package exporter turns one host's kvmnet diagnosis into Prometheus metrics: an HTTP handler that
// collects on every scrape within the deadline Prometheus announces (X-Prometheus-Scrape-Timeout-
// Seconds minus a margin), and a one-shot writer for node_exporter's textfile collector.
//
// It is read-only by construction: it reads through a Source (a snapshot of libvirt, the host and
// the guests' GetState/RunChecks answers) and the pure controller/diagnose; it must never import
// controller/fix, controller/fixplan or a full agent client. Everything that reaches a label is
// bounded and sanitised (valid UTF-8, no control characters, a length cap); free text (summaries,
// evidence, errors) never becomes a label.
package exporter
