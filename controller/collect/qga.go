package collect

import (
	"context"
	"fmt"
	"slices"

	"github.com/kvmnet/kvmnet/controller/snapshot"
)

// QGASource asks a guest's qemu-guest-agent for its view (controller/qga.View through libvirt's
// virDomainQemuAgentCommand). It must return by ctx's deadline.
type QGASource interface {
	GuestView(ctx context.Context, domain string) snapshot.QGAView
}

// QGAFunc adapts a function to QGASource.
type QGAFunc func(ctx context.Context, domain string) snapshot.QGAView

// GuestView calls f.
func (f QGAFunc) GuestView(ctx context.Context, domain string) snapshot.QGAView {
	return f(ctx, domain)
}

// withQGA adds qemu-guest-agent's view to a running, selected guest whose kvmnet agent did not answer
// and whose domain has the org.qemu.guest_agent.0 channel: the guest's own interfaces then still
// reach the diagnosis.
func (c *Collector) withQGA(ctx context.Context, dom snapshot.Domain, g snapshot.Guest) snapshot.Guest {
	if c.src.QGA == nil || g.Reachable || !dom.Running() {
		return g
	}
	if len(c.opts.Domains) > 0 && !slices.Contains(c.opts.Domains, dom.Name) {
		return g
	}
	if _, ok := dom.Channel(snapshot.ChannelQemuGA); !ok {
		return g
	}
	v, err := bounded(ctx, func(ctx context.Context) (snapshot.QGAView, error) { return c.src.QGA.GuestView(ctx, dom.Name), nil })
	if err != nil {
		v = snapshot.QGAView{Error: fmt.Sprintf("qemu-guest-agent: no answer within %s: %v", c.opts.Timeout, err)}
	}
	c.opts.Logger.Debug("qemu-guest-agent queried", "domain", dom.Name, "answered", v.Answered, "err", v.Error)
	g.QGA = &v
	return g
}
