package nm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"
)

// D-Bus names of NetworkManager's objects and interfaces.
const (
	busName       = "org.freedesktop.NetworkManager"
	nmPath        = dbus.ObjectPath("/org/freedesktop/NetworkManager")
	nmIface       = "org.freedesktop.NetworkManager"
	settingsPath  = dbus.ObjectPath("/org/freedesktop/NetworkManager/Settings")
	settingsIface = "org.freedesktop.NetworkManager.Settings"
	connIface     = "org.freedesktop.NetworkManager.Settings.Connection"
	deviceIface   = "org.freedesktop.NetworkManager.Device"
	activeIface   = "org.freedesktop.NetworkManager.Connection.Active"
	ip4Iface      = "org.freedesktop.NetworkManager.IP4Config"
	propsIface    = "org.freedesktop.DBus.Properties"
	// rootPath holds NetworkManager's ObjectManager (every object below /org/freedesktop).
	rootPath           = dbus.ObjectPath("/org/freedesktop")
	objectManagerIface = "org.freedesktop.DBus.ObjectManager"
	defaultSystemBus   = "unix:path=/run/dbus/system_bus_socket"
)

// DefaultCallTimeout bounds every D-Bus call when Options.CallTimeout is zero.
const DefaultCallTimeout = 3 * time.Second

// ErrNotRunning is returned (wrapped) when NetworkManager does not own its name on the bus.
var ErrNotRunning = errors.New("NetworkManager is not running (org.freedesktop.NetworkManager has no owner on the system bus); start it with `systemctl start NetworkManager`")

// Options tunes a Client.
type Options struct {
	// CallTimeout bounds each D-Bus call (default DefaultCallTimeout). A frozen NetworkManager turns
	// into an error after this long.
	CallTimeout time.Duration
	// Logger receives one line per change the Client makes (default: discard).
	Logger *slog.Logger
}

// Client is a NetworkManager client on one D-Bus connection. It is safe for concurrent use.
type Client struct {
	addr    string
	timeout time.Duration
	log     *slog.Logger

	mu   sync.Mutex
	conn *dbus.Conn
	own  bool
}

// SystemBusAddress returns the address of the system bus: $DBUS_SYSTEM_BUS_ADDRESS or the standard
// socket.
func SystemBusAddress() string {
	if a := os.Getenv("DBUS_SYSTEM_BUS_ADDRESS"); a != "" {
		return a
	}
	return defaultSystemBus
}

// New returns a Client on an existing connection (which the caller keeps and closes).
func New(conn *dbus.Conn, o Options) *Client {
	c := newClient("", o)
	c.conn = conn
	return c
}

// Dial returns a Client that connects to the bus at addr ("unix:path=..."; "" means
// SystemBusAddress()) lazily on first use and again after the connection breaks. Dial itself does no
// I/O.
func Dial(addr string, o Options) *Client {
	if addr == "" {
		addr = SystemBusAddress()
	}
	c := newClient(addr, o)
	c.own = true
	return c
}

func newClient(addr string, o Options) *Client {
	if o.CallTimeout <= 0 {
		o.CallTimeout = DefaultCallTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Client{addr: addr, timeout: o.CallTimeout, log: o.Logger}
}

// Close closes the connection if the Client dialled it.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.own && c.conn != nil {
		err := c.conn.Close()
		c.conn = nil
		return err
	}
	return nil
}

// Conn returns the live connection, connecting (with the call timeout) when needed.
func (c *Client) Conn(ctx context.Context) (*dbus.Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil && c.conn.Connected() {
		return c.conn, nil
	}
	if !c.own {
		return nil, fmt.Errorf("D-Bus connection to NetworkManager is closed")
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	type res struct {
		conn *dbus.Conn
		err  error
	}
	ch := make(chan res, 1)
	go func() {
		conn, err := dbus.Dial(c.addr)
		if err == nil {
			if err = conn.Auth(nil); err == nil {
				err = conn.Hello()
			}
			if err != nil {
				_ = conn.Close()
			}
		}
		ch <- res{conn, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, fmt.Errorf("connect to system bus %s: %w (is dbus running?)", c.addr, r.err)
		}
		c.conn = r.conn
		return r.conn, nil
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.conn != nil {
				_ = r.conn.Close()
			}
		}()
		return nil, fmt.Errorf("connect to system bus %s: no answer within %s (bus hung?)", c.addr, c.timeout)
	}
}

// call makes one method call with the Client's deadline and stores the reply into ret.
func (c *Client) call(ctx context.Context, path dbus.ObjectPath, method string, args []any, ret ...any) error {
	conn, err := c.Conn(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	call := conn.Object(busName, path).CallWithContext(ctx, method, dbus.FlagNoAutoStart, args...)
	if call.Err != nil {
		return c.wrap(ctx, method, path, call.Err)
	}
	if len(ret) == 0 {
		return nil
	}
	if err := call.Store(ret...); err != nil {
		return fmt.Errorf("NetworkManager %s on %s: unexpected reply: %w", method, path, err)
	}
	return nil
}

func (c *Client) wrap(ctx context.Context, method string, path dbus.ObjectPath, err error) error {
	var derr dbus.Error
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("NetworkManager %s on %s: no answer within %s (NetworkManager hung? check `systemctl status NetworkManager`)", method, path, c.timeout)
	case errors.As(err, &derr) && (derr.Name == "org.freedesktop.DBus.Error.ServiceUnknown" || derr.Name == "org.freedesktop.DBus.Error.NameHasNoOwner"):
		return fmt.Errorf("NetworkManager %s: %w", method, ErrNotRunning)
	}
	return fmt.Errorf("NetworkManager %s on %s: %w", method, path, err)
}

// getAll returns all properties of iface on path.
func (c *Client) getAll(ctx context.Context, path dbus.ObjectPath, iface string) (map[string]dbus.Variant, error) {
	var props map[string]dbus.Variant
	err := c.call(ctx, path, propsIface+".GetAll", []any{iface}, &props)
	return props, err
}

// Status is NetworkManager's presence on the bus.
type Status struct {
	// Running is true when NetworkManager owns its bus name and answers.
	Running bool
	// Version, e.g. "1.42.4".
	Version string
	// State is NetworkManager's global NMState (70 = connected globally).
	State uint32
}

// Status asks the bus whether NetworkManager runs, then asks it for its version. A missing bus or a
// missing NetworkManager is an error wrapping ErrNotRunning or naming the bus.
func (c *Client) Status(ctx context.Context) (Status, error) {
	conn, err := c.Conn(ctx)
	if err != nil {
		return Status{}, err
	}
	cctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var has bool
	if err := conn.BusObject().CallWithContext(cctx, "org.freedesktop.DBus.NameHasOwner", 0, busName).Store(&has); err != nil {
		return Status{}, fmt.Errorf("ask the system bus %s for NetworkManager: %w", c.addr, err)
	}
	if !has {
		return Status{}, ErrNotRunning
	}
	props, err := c.getAll(ctx, nmPath, nmIface)
	if err != nil {
		return Status{}, err
	}
	st := Status{Running: true}
	st.Version, _ = props["Version"].Value().(string)
	st.State, _ = props["State"].Value().(uint32)
	return st, nil
}

// Instance returns the unique bus name (":1.42") of the NetworkManager process that owns
// org.freedesktop.NetworkManager. Each start of NetworkManager gets a new one, so two different
// answers mean NetworkManager restarted in between — and lost its checkpoints, which live in its
// memory only. No owner is an error wrapping ErrNotRunning.
func (c *Client) Instance(ctx context.Context) (string, error) {
	conn, err := c.Conn(ctx)
	if err != nil {
		return "", err
	}
	cctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var owner string
	call := conn.BusObject().CallWithContext(cctx, "org.freedesktop.DBus.GetNameOwner", 0, busName)
	if call.Err != nil {
		return "", c.wrap(cctx, "GetNameOwner", "/org/freedesktop/DBus", call.Err)
	}
	if err := call.Store(&owner); err != nil {
		return "", fmt.Errorf("ask the system bus %s who owns %s: unexpected reply: %w", c.addr, busName, err)
	}
	return owner, nil
}
