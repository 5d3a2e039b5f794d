package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kvmnet/kvmnet/agent/config"
	"github.com/kvmnet/kvmnet/agent/server"
	"github.com/kvmnet/kvmnet/agent/transport"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.0.0-dev"

// defaultMemoryLimit is the Go soft memory limit unless GOMEMLIMIT is set: the agent idles in a few
// MiB and should stay small in every guest.
const defaultMemoryLimit = 32 << 20

// defaultGCPercent is the GC target unless GOGC is set: 50 keeps the heap near its live size after
// bursts of RPCs (peak RSS under 100 concurrent callers 29.8 -> 21.7 MiB, BENCHMARKS.md) for a few
// percent more GC CPU on a process that is idle almost always.
const defaultGCPercent = 50

// Service is what the agent serves: a kvmnetv1.AgentServer that releases its resources on Close.
type Service interface {
	kvmnetv1.AgentServer
	Close() error
}

// NewServiceFunc builds the service (agent/service in production, a fake in tests).
type NewServiceFunc func(version string, cfg config.Config, log *slog.Logger) (Service, error)

// env gives run the process environment and device probes (injected for tests).
type env struct {
	getenv func(string) string
	// exists reports whether a device path exists (vsock and virtio-serial are skipped when absent).
	exists func(string) bool
}

// flags are the command-line options.
type flags struct {
	configPath   string
	listen       []string
	vsockPort    uint
	serialDevice string
	logLevel     string
	version      bool
	set          map[string]bool // flags given explicitly
}

func parseFlags(args []string, stderr io.Writer) (flags, error) {
	var f flags
	fs := flag.NewFlagSet("kvmnet-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.configPath, "config", config.DefaultPath, "configuration file (YAML); missing file = defaults")
	fs.Func("listen", "transport to serve, repeatable: unix:/path, vsock:PORT, virtio-serial:/dev/virtio-ports/NAME (replaces the config file's listen)", func(s string) error {
		if _, err := transport.ParseSpec(s); err != nil {
			return err
		}
		f.listen = append(f.listen, s)
		return nil
	})
	fs.UintVar(&f.vsockPort, "vsock-port", transport.DefaultVsockPort, "vsock port of the vsock transport")
	fs.StringVar(&f.serialDevice, "serial-device", transport.DefaultSerialDevice, "virtio-serial port device of the virtio-serial transport")
	fs.StringVar(&f.logLevel, "log-level", "", "debug, info, warn or error (default: the config file's log_level)")
	fs.BoolVar(&f.version, "version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	if fs.NArg() > 0 {
		return f, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	f.set = map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	return f, nil
}

// merge applies the flags over the configuration file's values and validates the result.
func merge(cfg config.Config, f flags) (config.Config, error) {
	if len(f.listen) > 0 {
		cfg.Listen = append([]string(nil), f.listen...)
	}
	if f.logLevel != "" {
		cfg.LogLevel = f.logLevel
	}
	for i, l := range cfg.Listen {
		s, err := transport.ParseSpec(l)
		if err != nil {
			return cfg, err
		}
		switch {
		case s.Kind == "vsock" && f.set["vsock-port"]:
			if f.vsockPort == 0 || f.vsockPort > 1<<32-1 {
				return cfg, fmt.Errorf("--vsock-port %d: want 1..4294967295", f.vsockPort)
			}
			cfg.Listen[i] = "vsock:" + strconv.FormatUint(uint64(f.vsockPort), 10)
		case s.Kind == "virtio-serial" && f.set["serial-device"]:
			cfg.Listen[i] = "virtio-serial:" + f.serialDevice
		}
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("configuration (file merged with flags): %w", err)
	}
	return cfg, nil
}

// newLogger logs text to w; under journald (JOURNAL_STREAM set) without the timestamp journald adds.
func newLogger(w io.Writer, level string, journald bool) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lv}
	if journald {
		opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// openListeners opens every configured transport; vsock and virtio-serial are skipped (logged) when
// their device is absent. It fails when nothing could be opened.
func openListeners(cfg config.Config, e env, log *slog.Logger) ([]net.Listener, []string, error) {
	var ls []net.Listener
	var names []string
	var problems []string
	for _, l := range cfg.Listen {
		s, err := transport.ParseSpec(l)
		if err != nil {
			return nil, nil, err
		}
		switch {
		case s.Kind == "vsock" && !e.exists("/dev/vsock"):
			log.Info("transport skipped: no /dev/vsock in this guest (no vhost-vsock device)", "listen", l)
			problems = append(problems, l+": no /dev/vsock")
			continue
		case s.Kind == "virtio-serial" && !e.exists(s.Path):
			log.Info("transport skipped: virtio-serial port absent (no org.kvmnet.agent.0 channel)", "listen", l)
			problems = append(problems, l+": device absent")
			continue
		}
		ln, err := transport.Listen(s, log)
		if err != nil {
			log.Error("transport failed", "listen", l, "err", err)
			problems = append(problems, err.Error())
			continue
		}
		log.Info("serving", "listen", s.String())
		ls = append(ls, ln)
		names = append(names, s.String())
	}
	if len(ls) == 0 {
		return nil, nil, fmt.Errorf("no transport could be opened (%s); add a kvmnet channel or vsock device to the domain (kvmnetctl guests enable-channel), or pass --listen unix:/run/kvmnet/agent.sock",
			strings.Join(problems, "; "))
	}
	return ls, names, nil
}

// run is the agent's main; it returns the exit code. It stops when ctx is done.
func run(ctx context.Context, args []string, e env, stderr io.Writer, newSvc NewServiceFunc) int {
	f, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "kvmnet-agent:", err)
		return 2
	}
	if f.version {
		fmt.Fprintln(stderr, "kvmnet-agent", version)
		return 0
	}
	if e.getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
	if e.getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	cfg, err := config.Load(f.configPath)
	if err == nil {
		cfg, err = merge(cfg, f)
	}
	if err != nil {
		fmt.Fprintln(stderr, "kvmnet-agent:", err)
		return 2
	}
	log := newLogger(stderr, cfg.LogLevel, e.getenv("JOURNAL_STREAM") != "")
	log.Info("kvmnet-agent starting", "version", version, "config", f.configPath, "allow_apply", cfg.AllowApply)

	svc, err := newSvc(version, cfg, log)
	if err != nil {
		log.Error("service failed to start", "err", err)
		return 1
	}
	defer svc.Close()
	ls, names, err := openListeners(cfg, e, log)
	if err != nil {
		log.Error("no transport", "err", err)
		return 1
	}
	srv := server.New(svc, server.Options{AllowApply: cfg.AllowApply, ConfigPath: f.configPath, Logger: log, HostKeepalive: cfg.HostKeepalive})
	var wg sync.WaitGroup
	failed := make(chan error, len(ls))
	for i, l := range ls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(l); err != nil {
				log.Error("transport stopped", "listen", names[i], "err", err)
				failed <- err
			}
		}()
	}
	if err := sdNotify(e.getenv("NOTIFY_SOCKET"), "READY=1\nSTATUS=serving "+strings.Join(names, " ")); err != nil {
		log.Warn("sd_notify failed", "err", err)
	}
	code := 0
	select {
	case <-ctx.Done():
		log.Info("stopping", "reason", context.Cause(ctx))
	case err := <-failed:
		log.Error("stopping after a transport failed", "err", err)
		code = 1
	}
	_ = sdNotify(e.getenv("NOTIFY_SOCKET"), "STOPPING=1")
	stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Stop(stopCtx)
	wg.Wait()
	log.Info("stopped")
	return code
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }
	os.Exit(run(ctx, os.Args[1:], env{getenv: os.Getenv, exists: exists}, os.Stderr, newService))
}
