package agentclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
	"github.com/kvmnet/kvmnet/proto/kvmnet/v1/resync"
)

// Defaults of the options.
const (
	DefaultDialTimeout = 5 * time.Second
	DefaultCallTimeout = 10 * time.Second
	maxMessageSize     = 4 << 20
	// MaxHeaderListSize bounds the headers and trailers the client accepts from an agent. gRPC's
	// default is 16 MiB, outside the 4 MiB message cap: a hostile agent could send its status
	// message in the trailers. An honest agent's headers are a few hundred bytes, its error messages
	// a few KiB.
	MaxHeaderListSize = 64 << 10
)

// DialFunc opens one byte stream to the agent (a seam: tests inject their own).
type DialFunc func(ctx context.Context) (net.Conn, error)

type options struct {
	dialTimeout time.Duration
	callTimeout time.Duration
	resend      time.Duration
	log         *slog.Logger
	vsockDial   func(ctx context.Context, cid, port uint32) (net.Conn, error)
	dial        DialFunc
}

// Option configures Dial.
type Option func(*options)

// WithDialTimeout bounds each connection attempt including the serial handshake (default 5 s) and,
// when ctx has no deadline, Dial's wait for the first connection.
func WithDialTimeout(d time.Duration) Option { return func(o *options) { o.dialTimeout = d } }

// WithCallTimeout is the deadline given to calls whose context has none (default 10 s). Streams
// (Watch) are not limited.
func WithCallTimeout(d time.Duration) Option { return func(o *options) { o.callTimeout = d } }

// WithLogger receives connection attempts at debug level.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithResend sets how often the serial handshake repeats its HELLO (default 500 ms).
func WithResend(d time.Duration) Option { return func(o *options) { o.resend = d } }

// WithVsockDialer replaces the AF_VSOCK dialer (tests route vsock addresses through unix sockets).
func WithVsockDialer(f func(ctx context.Context, cid, port uint32) (net.Conn, error)) Option {
	return func(o *options) { o.vsockDial = f }
}

// WithDialFunc replaces the stream dialer for every scheme (tests, or a transport reached another
// way, e.g. through a netns). The serial handshake is then the dialer's business.
func WithDialFunc(f DialFunc) Option { return func(o *options) { o.dial = f } }

// Client is a connection to one agent. It exposes every kvmnetv1.AgentClient method.
type Client struct {
	kvmnetv1.AgentClient
	cc   *grpc.ClientConn
	addr Addr
}

// Addr is the address the client was dialed with.
func (c *Client) Addr() Addr { return c.addr }

// Close closes the connection.
func (c *Client) Close() error { return c.cc.Close() }

// Dial connects to the agent at addr (see ParseAddr) and waits until the connection is ready, so an
// unreachable agent is reported here with the reason of the last attempt. Later the channel redials
// by itself (for instance after the agent restarted); calls wait for it up to their deadline.
func Dial(ctx context.Context, addr string, opts ...Option) (*Client, error) {
	a, err := ParseAddr(addr)
	if err != nil {
		return nil, err
	}
	return DialAddr(ctx, a, opts...)
}

// DialAddr is Dial for an address already parsed (an endpoint the collector found in libvirt).
func DialAddr(ctx context.Context, a Addr, opts ...Option) (*Client, error) {
	if err := checkAddr(a); err != nil {
		return nil, err
	}
	o := options{dialTimeout: DefaultDialTimeout, callTimeout: DefaultCallTimeout, vsockDial: dialVsock}
	for _, f := range opts {
		f(&o)
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	dial := streamDialer(a, o)
	var lastMu sync.Mutex
	var lastErr error
	dialer := func(ctx context.Context, _ string) (net.Conn, error) {
		c, err := dial(ctx)
		lastMu.Lock()
		lastErr = err
		lastMu.Unlock()
		if err != nil {
			o.log.Debug("agent dial failed", "addr", a.String(), "err", err)
		}
		return c, err
	}
	cc, err := grpc.NewClient("passthrough:///kvmnet-agent",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(dialer),
		grpc.WithAuthority("kvmnet-agent"),
		grpc.WithIdleTimeout(0),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: o.dialTimeout,
		}),
		// 10 s is gRPC's minimum ping interval; with the 3 s timeout a silent peer is dropped in ~13 s
		// even without calls. Calls themselves carry deadlines (o.callTimeout).
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 3 * time.Second, PermitWithoutStream: true}),
		grpc.WithMaxHeaderListSize(MaxHeaderListSize),
		grpc.WithDefaultCallOptions(grpc.WaitForReady(true), grpc.MaxCallRecvMsgSize(maxMessageSize), grpc.MaxCallSendMsgSize(maxMessageSize)),
		grpc.WithChainUnaryInterceptor(explainHeaderLimit, defaultDeadline(o.callTimeout)),
		grpc.WithChainStreamInterceptor(explainHeaderLimitStream),
	)
	if err != nil {
		return nil, fmt.Errorf("agent %s: %w", a, err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.dialTimeout)
		defer cancel()
	}
	cc.Connect()
	for {
		s := cc.GetState()
		if s == connectivity.Ready {
			break
		}
		if s == connectivity.TransientFailure {
			lastMu.Lock()
			err := lastErr
			lastMu.Unlock()
			_ = cc.Close()
			if err == nil {
				err = errors.New("connection failed")
			}
			return nil, fmt.Errorf("agent %s: %w", a, err)
		}
		if !cc.WaitForStateChange(ctx, s) {
			lastMu.Lock()
			err := lastErr
			lastMu.Unlock()
			_ = cc.Close()
			if err != nil {
				return nil, fmt.Errorf("agent %s: %w (last attempt: %v)", a, ctx.Err(), err)
			}
			return nil, fmt.Errorf("agent %s: %w", a, ctx.Err())
		}
	}
	return &Client{AgentClient: kvmnetv1.NewAgentClient(cc), cc: cc, addr: a}, nil
}

// streamDialer returns the function that opens one byte stream for a.
func streamDialer(a Addr, o options) DialFunc {
	if o.dial != nil {
		return o.dial
	}
	bound := func(ctx context.Context) (context.Context, context.CancelFunc) {
		return context.WithTimeout(ctx, o.dialTimeout)
	}
	// unixConn connects to a.Path within the dial timeout; hint says what to check when it fails.
	unixConn := func(ctx context.Context, what, hint string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "unix", a.Path)
		if err != nil {
			return nil, fmt.Errorf("connect %s%s: %w%s", what, a.Path, err, hint)
		}
		return c, nil
	}
	switch a.Scheme {
	case "unix":
		return func(ctx context.Context) (net.Conn, error) {
			ctx, cancel := bound(ctx)
			defer cancel()
			return unixConn(ctx, "", "")
		}
	case "serial":
		return func(ctx context.Context) (net.Conn, error) {
			ctx, cancel := bound(ctx)
			defer cancel()
			c, err := unixConn(ctx, "channel socket ", " (is the domain running with a kvmnet channel? only root may connect once the channel is locked down)")
			if err != nil {
				return nil, err
			}
			rc, err := resync.Host(ctx, c, o.resend)
			if err != nil {
				_ = c.Close()
				return nil, err
			}
			return rc, nil
		}
	default: // vsock
		return func(ctx context.Context) (net.Conn, error) {
			ctx, cancel := bound(ctx)
			defer cancel()
			return o.vsockDial(ctx, a.CID, a.Port)
		}
	}
}

// defaultDeadline gives calls without a deadline one of d.
func defaultDeadline(d time.Duration) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if _, ok := ctx.Deadline(); !ok && d > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, d)
			defer cancel()
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}

// gRPC reports headers over MaxHeaderListSize in two ways, both worded for gRPC's developers: a
// header list over the limit ends the stream ("peer header list size exceeded limit"), and a single
// header value over it fails HPACK decoding and ends the connection ("COMPRESSION_ERROR").
var headerLimitErrors = []string{"header list size", "COMPRESSION_ERROR"}

// headerLimitError turns gRPC's wording for headers over MaxHeaderListSize into an error that says
// what happened (ResourceExhausted, like a message over the size cap); other errors pass unchanged.
func headerLimitError(err error) error {
	st, ok := status.FromError(err)
	if !ok || (st.Code() != codes.Internal && st.Code() != codes.Unavailable) {
		return err
	}
	for _, s := range headerLimitErrors {
		if strings.Contains(st.Message(), s) {
			return status.Errorf(codes.ResourceExhausted, "the agent's reply was refused: its headers or trailers exceed %d KiB "+
				"(a status message travels there, outside the %d MiB message limit; a broken or hostile agent): %s",
				MaxHeaderListSize>>10, maxMessageSize>>20, st.Message())
		}
	}
	return err
}

func explainHeaderLimit(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	return headerLimitError(invoker(ctx, method, req, reply, cc, opts...))
}

func explainHeaderLimitStream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	s, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		return nil, headerLimitError(err)
	}
	return headerLimitStream{s}, nil
}

// headerLimitStream explains header-limit errors of a stream's messages too.
type headerLimitStream struct{ grpc.ClientStream }

func (s headerLimitStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err == io.EOF {
		return err
	}
	return headerLimitError(err)
}
