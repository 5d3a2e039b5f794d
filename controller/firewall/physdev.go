package firewall

import "strings"

// PhysdevMatch is an iptables `-m physdev` match: the bridge ports of a frame that br_netfilter
// passed to the IP hooks (bridge-nf-call-iptables=1). Interface names may end in "+".
type PhysdevMatch struct {
	// In is --physdev-in (the port the frame entered the bridge by).
	In *IfaceMatch `json:"in,omitempty"`
	// Out is --physdev-out (the port a bridged frame leaves by).
	Out *IfaceMatch `json:"out,omitempty"`
	// IsIn, IsOut and IsBridged are --physdev-is-in/-is-out/-is-bridged (nil when absent).
	IsIn      *FlagMatch `json:"is_in,omitempty"`
	IsOut     *FlagMatch `json:"is_out,omitempty"`
	IsBridged *FlagMatch `json:"is_bridged,omitempty"`
}

// FlagMatch is an option without a value, possibly negated.
type FlagMatch struct {
	Neg bool `json:"neg,omitempty"`
}

// physdevOption records one physdev option on r; it reports false for options of other modules.
func (r *Rule) physdevOption(opt, val string, neg bool) bool {
	if !strings.HasPrefix(opt, "--physdev-") {
		return false
	}
	if r.Physdev == nil {
		r.Physdev = &PhysdevMatch{}
	}
	m := r.Physdev
	switch opt {
	case "--physdev-in":
		m.In = &IfaceMatch{Name: val, Neg: neg}
	case "--physdev-out":
		m.Out = &IfaceMatch{Name: val, Neg: neg}
	case "--physdev-is-in":
		m.IsIn = &FlagMatch{Neg: neg}
	case "--physdev-is-out":
		m.IsOut = &FlagMatch{Neg: neg}
	case "--physdev-is-bridged":
		m.IsBridged = &FlagMatch{Neg: neg}
	default:
		return false
	}
	return true
}

// matches follows xt_physdev's physdev_mt: a packet without bridge info matches only when every
// option used is negated; an absent in/out port (a routed packet has no out port) skips that
// name test instead of failing it.
func (m *PhysdevMatch) matches(p Packet) bool {
	if !p.BrNF {
		for _, neg := range []struct {
			set bool
			neg bool
		}{
			{m.IsBridged != nil, m.IsBridged != nil && m.IsBridged.Neg},
			{m.IsIn != nil, m.IsIn != nil && m.IsIn.Neg},
			{m.IsOut != nil, m.IsOut != nil && m.IsOut.Neg},
			{m.In != nil, m.In != nil && m.In.Neg},
			{m.Out != nil, m.Out != nil && m.Out.Neg},
		} {
			if neg.set && !neg.neg {
				return false
			}
		}
		return true
	}
	bridged := p.PhysOut != ""
	if m.IsBridged != nil && bridged == m.IsBridged.Neg {
		return false
	}
	if m.IsIn != nil && (p.PhysIn != "") == m.IsIn.Neg {
		return false
	}
	if m.IsOut != nil && (p.PhysOut != "") == m.IsOut.Neg {
		return false
	}
	if m.In != nil && p.PhysIn != "" && ifaceMatches(m.In.Name, p.PhysIn) == m.In.Neg {
		return false
	}
	if m.Out != nil && p.PhysOut != "" && ifaceMatches(m.Out.Name, p.PhysOut) == m.Out.Neg {
		return false
	}
	return true
}
