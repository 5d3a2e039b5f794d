package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/kvmnet/kvmnet/agent/config"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// Defaults of Options.
const (
	DefaultMaxMessageSize    = 4 << 20
	DefaultMaxRPCTimeout     = 2 * time.Minute
	DefaultConnectionTimeout = 10 * time.Second
	DefaultIdleRelease       = 2 * time.Second
	// DefaultMaxHeaderListSize bounds the headers a host may send (gRPC's own default is 16 MiB,
	// outside the message cap). The controller's headers are a few hundred bytes.
	DefaultMaxHeaderListSize = 64 << 10
)

// Options configures the server. Zero values take the defaults.
type Options struct {
	// AllowApply is config.Config.AllowApply: false gates Apply, Confirm and Rollback.
	AllowApply bool
	// ConfigPath names the file holding allow_apply, for the PERMISSION_DENIED message.
	// Default config.DefaultPath.
	ConfigPath string
	// Logger receives one line per RPC (debug when it succeeded, warn when it failed).
	Logger *slog.Logger
	// MaxMessageSize bounds received and sent messages. Default 4 MiB.
	MaxMessageSize int
	// MaxHeaderListSize bounds the header list of a request. Default 64 KiB.
	MaxHeaderListSize uint32
	// MaxRPCTimeout caps the deadline of every unary RPC (a caller's longer or missing deadline is
	// cut to it). Default 2 min.
	MaxRPCTimeout time.Duration
	// ConnectionTimeout bounds the HTTP/2 handshake of a new connection, so a truncated preface frees a
	// single-stream transport. Default 10 s.
	ConnectionTimeout time.Duration
	// IdleRelease: once no unary RPC has run for this long after one ended, the server returns the
	// memory the burst freed to the operating system (debug.FreeOSMemory), once. It is a one-shot
	// timer re-armed by RPCs, never a periodic wakeup. Default 2 s; negative disables it.
	IdleRelease time.Duration
	// ReleaseMemory is what IdleRelease calls. Default: two GCs (sync.Pool buffers survive one) and
	// debug.FreeOSMemory.
	ReleaseMemory func()
	// HostKeepalive is config.Config.HostKeepalive: after this long without traffic from a connected
	// host the server pings it and drops the connection if the ping is not answered within 5 s.
	// Zero (the default) sends no pings, so an idle agent with a connected host never wakes up: every
	// transport reports a host that goes away by itself (the kernel ends unix and vsock connections,
	// the virtio-serial port reads EOF once the host side closes). Pings only catch a host that stays
	// connected but stops answering.
	HostKeepalive time.Duration
}

// GatedMethods are the RPCs report-only mode refuses.
var GatedMethods = map[string]bool{
	kvmnetv1.Agent_Apply_FullMethodName:    true,
	kvmnetv1.Agent_Confirm_FullMethodName:  true,
	kvmnetv1.Agent_Rollback_FullMethodName: true,
}

// Server is kvmnet-agent's gRPC server.
type Server struct {
	g    *grpc.Server
	log  *slog.Logger
	opts Options

	inflight atomic.Int64
	idle     *time.Timer // nil when IdleRelease is disabled
}

// New builds the server for svc.
func New(svc kvmnetv1.AgentServer, opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ConfigPath == "" {
		opts.ConfigPath = config.DefaultPath
	}
	if opts.MaxMessageSize <= 0 {
		opts.MaxMessageSize = DefaultMaxMessageSize
	}
	if opts.MaxHeaderListSize == 0 {
		opts.MaxHeaderListSize = DefaultMaxHeaderListSize
	}
	if opts.MaxRPCTimeout <= 0 {
		opts.MaxRPCTimeout = DefaultMaxRPCTimeout
	}
	if opts.ConnectionTimeout <= 0 {
		opts.ConnectionTimeout = DefaultConnectionTimeout
	}
	if opts.IdleRelease == 0 {
		opts.IdleRelease = DefaultIdleRelease
	}
	if opts.ReleaseMemory == nil {
		opts.ReleaseMemory = releaseMemory
	}
	s := &Server{log: opts.Logger, opts: opts}
	if opts.IdleRelease > 0 {
		s.idle = time.AfterFunc(time.Hour, func() {
			if s.inflight.Load() == 0 {
				s.opts.ReleaseMemory()
			}
		})
		s.idle.Stop()
	}
	s.g = grpc.NewServer(
		grpc.MaxRecvMsgSize(opts.MaxMessageSize),
		grpc.MaxSendMsgSize(opts.MaxMessageSize),
		grpc.MaxHeaderListSize(opts.MaxHeaderListSize),
		grpc.ConnectionTimeout(opts.ConnectionTimeout),
		// The controller pings every 10 s (gRPC's client minimum) with or without active RPCs;
		// allow it, and punish only clients pinging faster than every 5 s.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: keepaliveTime(opts.HostKeepalive), Timeout: 5 * time.Second}),
		grpc.ChainUnaryInterceptor(s.track, s.logUnary, s.gate, s.capDeadline),
		grpc.ChainStreamInterceptor(s.logStream),
	)
	kvmnetv1.RegisterAgentServer(s.g, svc)
	return s
}

// Serve serves on l until Stop; it may be called for several listeners at once. It returns nil after
// Stop.
func (s *Server) Serve(l net.Listener) error {
	err := s.g.Serve(l)
	if errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("server: serve on %s: %w", l.Addr(), err)
	}
	return nil
}

// Stop stops gracefully: running RPCs may finish until ctx is done, then every connection is cut
// and Stop returns. A handler that ignores its context may still be running then (gRPC waits for
// handlers only in GracefulStop); it can no longer send anything.
func (s *Server) Stop(ctx context.Context) {
	if s.idle != nil {
		s.idle.Stop()
	}
	done := make(chan struct{})
	go func() {
		s.g.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.g.Stop()
	}
}

// GRPC exposes the underlying server (to register more services, e.g. health).
func (s *Server) GRPC() *grpc.Server { return s.g }

// ReportOnlyError is the status report-only mode answers with.
func ReportOnlyError(method, configPath string) error {
	return status.Errorf(codes.PermissionDenied,
		"%s refused: the agent is in report-only mode (allow_apply: false in %s); set allow_apply: true and restart kvmnet-agent to let it change the guest",
		method, configPath)
}

// releaseMemory empties gRPC's buffer pools (a sync.Pool survives one GC in its victim cache) and
// returns the freed pages to the operating system.
// keepaliveTime maps Options.HostKeepalive to gRPC's keepalive time: zero is "never" (gRPC's own
// zero means its 2 h default).
func keepaliveTime(d time.Duration) time.Duration {
	if d <= 0 {
		return time.Duration(math.MaxInt64)
	}
	return d
}

func releaseMemory() {
	runtime.GC()
	debug.FreeOSMemory()
}

// track counts running unary RPCs and re-arms the idle release when the last one ends.
func (s *Server) track(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	s.inflight.Add(1)
	defer func() {
		if s.inflight.Add(-1) == 0 && s.idle != nil {
			s.idle.Reset(s.opts.IdleRelease)
		}
	}()
	return h(ctx, req)
}

func (s *Server) gate(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if !s.opts.AllowApply && GatedMethods[info.FullMethod] {
		return nil, ReportOnlyError(info.FullMethod, s.opts.ConfigPath)
	}
	return h(ctx, req)
}

func (s *Server) capDeadline(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	limit := time.Now().Add(s.opts.MaxRPCTimeout)
	if dl, ok := ctx.Deadline(); !ok || dl.After(limit) {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, limit)
		defer cancel()
	}
	return h(ctx, req)
}

func (s *Server) logUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := h(ctx, req)
	s.logRPC(ctx, info.FullMethod, start, err)
	return resp, err
}

func (s *Server) logStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	start := time.Now()
	err := h(srv, ss)
	s.logRPC(ss.Context(), info.FullMethod, start, err)
	return err
}

func (s *Server) logRPC(ctx context.Context, method string, start time.Time, err error) {
	remote := ""
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		remote = p.Addr.String()
	}
	code := status.Code(err)
	lvl := slog.LevelDebug
	if err != nil && code != codes.Canceled {
		lvl = slog.LevelWarn
	}
	attrs := []any{"method", method, "code", code.String(), "duration", time.Since(start), "remote", remote}
	if err != nil {
		attrs = append(attrs, "err", status.Convert(err).Message())
	}
	s.log.Log(ctx, lvl, "rpc", attrs...)
}
