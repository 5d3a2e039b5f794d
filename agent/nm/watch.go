package nm

import (
	"context"
	"fmt"

	gonm "github.com/Wifx/gonetworkmanager/v2"
	"github.com/godbus/dbus/v5"
)

// EventKind says what an Event is about.
type EventKind int

const (
	// EventState is a change of NetworkManager's global state or of a device's state.
	EventState EventKind = iota + 1
	// EventProfile is a profile added, changed or removed.
	EventProfile
)

// Event is one NetworkManager signal, summarised.
type Event struct {
	// Kind of event.
	Kind EventKind
	// Interface concerned ("" for global or profile events).
	Interface string
	// Summary for humans, e.g. "enp1s0: disconnected -> activated (reason 0)".
	Summary string
}

var watchMatches = [][]dbus.MatchOption{
	{dbus.WithMatchInterface(nmIface), dbus.WithMatchMember("StateChanged"), dbus.WithMatchObjectPath(nmPath)},
	{dbus.WithMatchInterface(deviceIface), dbus.WithMatchMember("StateChanged"), dbus.WithMatchPathNamespace("/org/freedesktop/NetworkManager/Devices")},
	{dbus.WithMatchInterface(settingsIface), dbus.WithMatchObjectPath(settingsPath)},
	{dbus.WithMatchInterface(connIface), dbus.WithMatchMember("Updated"), dbus.WithMatchPathNamespace(settingsPath)},
}

// Subscribe streams NetworkManager's state and profile signals until ctx ends or the bus connection
// breaks (then the channel closes). It is event-driven: nothing runs while no signal arrives.
func (c *Client) Subscribe(ctx context.Context) (<-chan Event, error) {
	conn, err := c.Conn(ctx)
	if err != nil {
		return nil, err
	}
	for _, m := range watchMatches {
		mctx, cancel := context.WithTimeout(ctx, c.timeout)
		err := conn.AddMatchSignalContext(mctx, m...)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("subscribe to NetworkManager signals: %w", err)
		}
	}
	sig := make(chan *dbus.Signal, 64)
	conn.Signal(sig)
	out := make(chan Event, 16)
	go func() {
		defer close(out)
		defer func() {
			conn.RemoveSignal(sig)
			for _, m := range watchMatches {
				rctx, cancel := context.WithTimeout(context.Background(), c.timeout)
				_ = conn.RemoveMatchSignalContext(rctx, m...)
				cancel()
			}
		}()
		names := map[dbus.ObjectPath]string{}
		for {
			select {
			case <-ctx.Done():
				return
			case s, ok := <-sig:
				if !ok {
					return
				}
				ev, ok := c.summarise(ctx, s, names)
				if !ok {
					continue
				}
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}

func (c *Client) summarise(ctx context.Context, s *dbus.Signal, names map[dbus.ObjectPath]string) (Event, bool) {
	u32 := func(i int) uint32 {
		if i < len(s.Body) {
			v, _ := s.Body[i].(uint32)
			return v
		}
		return 0
	}
	path0 := func() dbus.ObjectPath {
		if len(s.Body) > 0 {
			p, _ := s.Body[0].(dbus.ObjectPath)
			return p
		}
		return ""
	}
	profileName := func(p dbus.ObjectPath) string {
		if st, err := c.Settings(ctx, p); err == nil {
			names[p] = settingID(st)
		}
		if n, ok := names[p]; ok {
			return n
		}
		return string(p)
	}
	switch s.Name {
	case nmIface + ".StateChanged":
		return Event{Kind: EventState, Summary: fmt.Sprintf("NetworkManager state %s", gonm.NmState(u32(0)))}, true
	case deviceIface + ".StateChanged":
		ifname := names[s.Path]
		if ifname == "" {
			var v dbus.Variant
			if err := c.call(ctx, s.Path, propsIface+".Get", []any{deviceIface, "Interface"}, &v); err == nil {
				ifname, _ = v.Value().(string)
				names[s.Path] = ifname
			}
		}
		return Event{Kind: EventState, Interface: ifname, Summary: fmt.Sprintf("%s: %s -> %s (reason %d)", ifname,
			gonm.NmDeviceState(u32(1)), gonm.NmDeviceState(u32(0)), u32(2))}, true
	case settingsIface + ".NewConnection":
		return Event{Kind: EventProfile, Summary: "profile added: " + profileName(path0())}, true
	case settingsIface + ".ConnectionRemoved":
		p := path0()
		n := names[p]
		if n == "" {
			n = string(p)
		}
		delete(names, p)
		return Event{Kind: EventProfile, Summary: "profile removed: " + n}, true
	case connIface + ".Updated":
		return Event{Kind: EventProfile, Summary: "profile changed: " + profileName(s.Path)}, true
	}
	return Event{}, false
}
