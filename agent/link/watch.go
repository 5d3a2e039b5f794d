package link

import (
	"context"
	"fmt"
	"net"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/timestamppb"

	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// linkState is what Watch compares to decide whether a link update is worth an event (the kernel
// repeats RTM_NEWLINK for changes nobody cares about, e.g. statistics).
type linkState struct {
	name    string
	adminUp bool
	oper    string
	carrier bool
	mtu     int
	mac     string
}

func stateOf(l netlink.Link) linkState {
	a := l.Attrs()
	return linkState{
		name:    DisplayName(a.Name),
		adminUp: a.RawFlags&unix.IFF_UP != 0,
		oper:    a.OperState.String(),
		carrier: a.RawFlags&unix.IFF_LOWER_UP != 0,
		mtu:     a.MTU,
		mac:     a.HardwareAddr.String(),
	}
}

func (s linkState) usable() bool {
	return s.adminUp && s.carrier && (s.oper == "up" || s.oper == "unknown")
}

func yesno(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func (s linkState) describe() string {
	admin := "down"
	if s.adminUp {
		admin = "up"
	}
	return fmt.Sprintf("admin=%s oper=%s carrier=%s mtu=%d mac=%s", admin, s.oper, yesno(s.carrier), s.mtu, s.mac)
}

// linkEvent returns the summary for a link going from old (ok=false: unknown) to cur, or "" when
// nothing an operator cares about changed.
func linkEvent(old linkState, known bool, cur linkState) string {
	switch {
	case !known:
		return fmt.Sprintf("%s added (%s)", cur.name, cur.describe())
	case old == cur:
		return ""
	case old.usable() != cur.usable():
		verb := "down"
		if cur.usable() {
			verb = "up"
		}
		return fmt.Sprintf("%s %s (%s)", cur.name, verb, cur.describe())
	case old.name != cur.name:
		return fmt.Sprintf("%s renamed to %s (%s)", old.name, cur.name, cur.describe())
	default:
		return fmt.Sprintf("%s changed (%s)", cur.name, cur.describe())
	}
}

// Watch subscribes to link and address changes of the Discoverer's namespace and returns a channel
// of events. The subscriptions are active when Watch returns. Nothing runs on a timer: the
// goroutines block in netlink reads until the kernel reports a change or ctx ends. The channel is
// closed when ctx ends or the kernel subscription fails (then the error is logged; call Watch
// again).
func (d *Discoverer) Watch(ctx context.Context) (<-chan *kvmnetv1.Event, error) {
	ctx, cancel := context.WithCancel(ctx)
	linkCh := make(chan netlink.LinkUpdate, 64)
	addrCh := make(chan netlink.AddrUpdate, 64)
	onErr := func(err error) { d.log.Warn("netlink subscription error", "err", err) }
	if err := netlink.LinkSubscribeWithOptions(linkCh, ctx.Done(), netlink.LinkSubscribeOptions{
		Namespace: d.ns, ErrorCallback: onErr,
	}); err != nil {
		cancel()
		return nil, fmt.Errorf("subscribe to link changes over netlink: %w", err)
	}
	if err := netlink.AddrSubscribeWithOptions(addrCh, ctx.Done(), netlink.AddrSubscribeOptions{
		Namespace: d.ns, ErrorCallback: onErr,
	}); err != nil {
		cancel()
		drain(linkCh)
		return nil, fmt.Errorf("subscribe to address changes over netlink: %w", err)
	}
	// Known links, taken after subscribing so no change falls between the two.
	links, err := retryDump(d.h.LinkList)
	if err != nil {
		cancel()
		drain(linkCh)
		drain(addrCh)
		return nil, fmt.Errorf("list links over netlink: %w", err)
	}
	w := &watcher{d: d, states: map[int]linkState{}, out: make(chan *kvmnetv1.Event, 64)}
	for _, l := range links {
		if !isLoopback(l) {
			w.states[l.Attrs().Index] = stateOf(l)
		} else {
			w.loopback = l.Attrs().Index
		}
	}
	go w.run(ctx, cancel, linkCh, addrCh)
	return w.out, nil
}

type watcher struct {
	d        *Discoverer
	states   map[int]linkState
	loopback int
	out      chan *kvmnetv1.Event
}

func (w *watcher) run(ctx context.Context, cancel context.CancelFunc, linkCh chan netlink.LinkUpdate, addrCh chan netlink.AddrUpdate) {
	defer close(w.out)
	defer func() {
		// Stop the subscriptions and let the netlink goroutines finish (they close their channels).
		cancel()
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { drain(linkCh); wg.Done() }()
		go func() { drain(addrCh); wg.Done() }()
		wg.Wait()
	}()
	for {
		var ev *kvmnetv1.Event
		select {
		case <-ctx.Done():
			return
		case u, ok := <-linkCh:
			if !ok {
				return
			}
			ev = w.onLink(u)
		case u, ok := <-addrCh:
			if !ok {
				return
			}
			ev = w.onAddr(u)
		}
		if ev == nil {
			continue
		}
		select {
		case w.out <- ev:
		case <-ctx.Done():
			return
		}
	}
}

func (w *watcher) event(kind kvmnetv1.EventKind, iface, summary string) *kvmnetv1.Event {
	return &kvmnetv1.Event{Time: timestamppb.New(w.d.now()), Kind: kind, Interface: iface, Summary: summary}
}

func (w *watcher) onLink(u netlink.LinkUpdate) *kvmnetv1.Event {
	if u.Link == nil || isLoopback(u.Link) {
		return nil
	}
	idx := u.Link.Attrs().Index
	cur := stateOf(u.Link)
	if u.Header.Type == unix.RTM_DELLINK {
		delete(w.states, idx)
		return w.event(kvmnetv1.EventKind_EVENT_KIND_LINK, cur.name, cur.name+" removed")
	}
	old, known := w.states[idx]
	w.states[idx] = cur
	if s := linkEvent(old, known, cur); s != "" {
		return w.event(kvmnetv1.EventKind_EVENT_KIND_LINK, cur.name, s)
	}
	return nil
}

func (w *watcher) onAddr(u netlink.AddrUpdate) *kvmnetv1.Event {
	if u.LinkIndex == w.loopback && w.loopback != 0 {
		return nil
	}
	name := ""
	if st, ok := w.states[u.LinkIndex]; ok {
		name = st.name
	} else if l, err := w.d.h.LinkByIndex(u.LinkIndex); err == nil {
		if isLoopback(l) {
			return nil
		}
		name = DisplayName(l.Attrs().Name)
	} else {
		name = fmt.Sprintf("if%d", u.LinkIndex)
	}
	return w.event(kvmnetv1.EventKind_EVENT_KIND_ADDRESS, name, addrSummary(u.LinkAddress, u.NewAddr, name))
}

func addrSummary(a net.IPNet, added bool, name string) string {
	if added {
		return fmt.Sprintf("%s added on %s", a.String(), name)
	}
	return fmt.Sprintf("%s removed from %s", a.String(), name)
}

func drain[T any](ch chan T) {
	for range ch {
	}
}
