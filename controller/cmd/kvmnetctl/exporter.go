package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/kvmnet/kvmnet/controller/agentclient"
	"github.com/kvmnet/kvmnet/controller/collect"
	"github.com/kvmnet/kvmnet/controller/exporter"
	"github.com/kvmnet/kvmnet/controller/snapshot"
)

// DefaultWorkers is libvirtd's default max_client_requests: more guests in flight at once would only
// queue inside libvirtd.
const DefaultWorkers = 5

func newExporterCmd(g *Globals) *cobra.Command {
	var (
		cf           collectFlags
		listen       string
		textfile     string
		guestTimeout time.Duration
		margin       time.Duration
		workers      int
	)
	cmd := &cobra.Command{
		Use:   "exporter",
		Short: "Serve kvmnet's findings as Prometheus metrics (or write them once for node_exporter)",
		Long: "exporter collects and diagnoses on every scrape, within the scrape's own deadline\n" +
			"(X-Prometheus-Scrape-Timeout-Seconds minus --margin, at most --timeout), querying at most --workers\n" +
			"guests at once, each within --guest-timeout: a hung guest shows as kvmnet_guest_timed_out 1 and\n" +
			"never fails the scrape. It only reads: its agent client has no Apply/Confirm/Rollback.\n\n" +
			"With --textfile DIR it collects once and writes DIR/kvmnet.prom atomically for node_exporter's\n" +
			"textfile collector (exit 1 when libvirt could not be read). Under systemd socket activation\n" +
			"(kvmnetctl-exporter.socket) it serves the socket it is given instead of --listen.",
		Example: "  kvmnetctl exporter --listen 127.0.0.1:" + strconv.Itoa(exporter.DefaultPort) + "\n" +
			"  kvmnetctl exporter --textfile /var/lib/prometheus/node-exporter",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if workers < 1 {
				return Usage(fmt.Errorf("--workers must be at least 1, got %d", workers))
			}
			src := exporterSource(g, &cf, workers)
			e := exporter.New(src, exporter.Options{Version: version, Timeout: g.Timeout, Margin: margin, GuestTimeout: guestTimeout})
			if textfile != "" {
				res, err := e.WriteTextfile(cmd.Context(), textfile)
				if err != nil {
					return Failed(err)
				}
				if res.Err != nil {
					return Unreachable(fmt.Errorf("wrote kvmnet_up 0: %w", res.Err))
				}
				return nil
			}
			l, err := exporterListener(listen, g.Getenv)
			if err != nil {
				return Usage(err)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return serveExporter(ctx, l, e, g)
		},
	}
	cf.register(cmd.Flags(), true)
	fs := cmd.Flags()
	fs.StringVar(&listen, "listen", ":"+strconv.Itoa(exporter.DefaultPort), "address to serve /metrics on")
	fs.StringVar(&textfile, "textfile", "", "write DIR/"+exporter.TextfileName+" once (node_exporter textfile collector) and exit")
	fs.DurationVar(&guestTimeout, "guest-timeout", exporter.DefaultGuestTimeout, "time limit for one guest's answers")
	fs.DurationVar(&margin, "margin", exporter.DefaultMargin, "kept back from the scraper's timeout for encoding and the network")
	fs.IntVar(&workers, "workers", DefaultWorkers, "guests queried at once (libvirtd's max_client_requests is 5 by default)")
	return cmd
}

// exporterSource reads a snapshot per scrape through a read-only agent client.
func exporterSource(g *Globals, cf *collectFlags, workers int) exporter.Source {
	return exporter.SourceFunc(func(ctx context.Context, guestTimeout time.Duration) (snapshot.Snapshot, error) {
		opts := cf.options(g, true, nil)
		opts.Timeout, opts.Workers = guestTimeout, workers
		dial := collect.DialFunc(func(ctx context.Context, addr snapshot.AgentAddr) (collect.Agent, error) {
			c, err := agentclient.DialReadOnly(ctx, addr, agentclient.WithDialTimeout(guestTimeout))
			if err != nil {
				return nil, err
			}
			return c, nil
		})
		c, closeFn, err := connectCollector(ctx, g, opts, hostEnv{}, dial)
		if err != nil {
			return snapshot.Snapshot{}, err
		}
		defer closeFn()
		return c.Collect(ctx)
	})
}

// exporterListener is the socket systemd passed (LISTEN_FDS, socket activation), else a new one on addr.
func exporterListener(addr string, getenv func(string) string) (net.Listener, error) {
	if pid, _ := strconv.Atoi(getenv("LISTEN_PID")); pid == os.Getpid() {
		if n, _ := strconv.Atoi(getenv("LISTEN_FDS")); n >= 1 {
			f := os.NewFile(3, "systemd-socket") // SD_LISTEN_FDS_START
			l, err := net.FileListener(f)
			_ = f.Close()
			if err != nil {
				return nil, fmt.Errorf("socket from systemd (fd 3): %w", err)
			}
			return l, nil
		}
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w (another exporter running? pick one with --listen)", addr, err)
	}
	return l, nil
}

func serveExporter(ctx context.Context, l net.Listener, e *exporter.Exporter, g *Globals) error {
	srv := &http.Server{Handler: e.Handler(), ReadHeaderTimeout: 5 * time.Second, WriteTimeout: g.Timeout + 5*time.Second}
	fmt.Fprintf(g.Stderr, "kvmnetctl exporter: serving http://%s/metrics\n", l.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		return nil
	}
}
