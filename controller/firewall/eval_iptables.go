package firewall

import (
	"fmt"
	"slices"
	"strings"
)

// iptablesHooks maps a hook to the (table, built-in chain, priority) triples iptables registers.
var iptablesHooks = map[Hook][]struct {
	table, chain string
	prio         int
	nat          bool
}{
	HookForward:     {{"mangle", "FORWARD", -150, false}, {"filter", "FORWARD", 0, false}, {"security", "FORWARD", 50, false}},
	HookInput:       {{"mangle", "INPUT", -150, false}, {"filter", "INPUT", 0, false}, {"security", "INPUT", 50, false}},
	HookPostrouting: {{"mangle", "POSTROUTING", -150, false}, {"nat", "POSTROUTING", 100, true}},
}

// baseChains returns the hooked chains of this dump for hook.
func (ipt *IPTables) baseChains(hook Hook) []baseChain {
	if ipt.Empty() {
		return nil
	}
	backend := "iptables-" + ipt.Variant
	var out []baseChain
	for _, h := range iptablesHooks[hook] {
		t := ipt.Table(h.table)
		c := t.Chain(h.chain)
		if c == nil {
			continue
		}
		table, chain, nat := t, c, h.nat
		out = append(out, baseChain{
			backend: backend, name: fmt.Sprintf("%s %s %s", backend, h.table, h.chain), prio: h.prio, nat: nat,
			policy: strings.ToLower(c.Policy),
			eval:   func(p Packet, tr *tracer) chainVerdict { return ipt.evalBase(table, chain, p, tr, nat) },
		})
	}
	return out
}

type frame struct {
	chain *Chain
	pos   int
}

// evalBase walks a built-in chain with jumps, gotos and returns, and applies its policy.
func (ipt *IPTables) evalBase(t *Table, base *Chain, p Packet, tr *tracer, nat bool) chainVerdict {
	backend := "iptables-" + ipt.Variant
	qual := func(c *Chain) string { return fmt.Sprintf("%s %s %s", backend, t.Name, c.Name) }
	// stack holds the frames to return to; a goto replaces the current frame.
	stack := []frame{}
	cur := frame{chain: base}
	for {
		if cur.pos >= len(cur.chain.Rules) {
			if len(stack) == 0 {
				return policyVerdict(backend, qual(base), base.Policy, nat)
			}
			cur = stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			continue
		}
		r := cur.chain.Rules[cur.pos]
		cur.pos++
		tr.steps++
		if tr.steps > maxSteps {
			return chainVerdict{verdict: "unknown", rule: "evaluation step limit reached (jump loop?)", chain: qual(cur.chain)}
		}
		if !r.matchKnown(p) {
			continue
		}
		if len(r.Unknown) > 0 {
			tr.uncertain = append(tr.uncertain, r.Text)
			tr.add("%s: %s (assumed not to match: %s not modelled)", qual(cur.chain), r.Text, strings.Join(r.Unknown, "; "))
			continue
		}
		switch r.Target {
		case "":
			continue // a counting rule
		case "ACCEPT":
			tr.add("%s: %s", qual(cur.chain), r.Text)
			return chainVerdict{verdict: verdictAccept, rule: r.Text, chain: qual(cur.chain)}
		case "DROP":
			tr.add("%s: %s", qual(cur.chain), r.Text)
			return chainVerdict{verdict: verdictDrop, rule: r.Text, chain: qual(cur.chain)}
		case "REJECT":
			tr.add("%s: %s", qual(cur.chain), r.Text)
			return chainVerdict{verdict: verdictReject, rule: r.Text, chain: qual(cur.chain)}
		case "MASQUERADE", "SNAT":
			tr.add("%s: %s", qual(cur.chain), r.Text)
			return chainVerdict{verdict: verdictAccept, nat: strings.ToLower(r.Target), rule: r.Text, chain: qual(cur.chain)}
		case "DNAT", "REDIRECT", "NETMAP":
			tr.add("%s: %s", qual(cur.chain), r.Text)
			return chainVerdict{verdict: verdictAccept, rule: r.Text, chain: qual(cur.chain)}
		case "RETURN":
			tr.add("%s: %s", qual(cur.chain), r.Text)
			if len(stack) == 0 {
				return policyVerdict(backend, qual(base), base.Policy, nat)
			}
			cur = stack[len(stack)-1]
			stack = stack[:len(stack)-1]
		case "QUEUE", "NFQUEUE":
			tr.add("%s: %s (queued to user space: verdict unknown)", qual(cur.chain), r.Text)
			return chainVerdict{verdict: "unknown", rule: r.Text, chain: qual(cur.chain)}
		default:
			next := t.Chain(r.Target)
			if next == nil || next.Builtin() {
				// A non-terminating target extension (LOG, CHECKSUM, MARK, TCPMSS, CT, ...).
				continue
			}
			tr.add("%s: %s", qual(cur.chain), r.Text)
			if !r.Goto {
				stack = append(stack, cur)
			}
			cur = frame{chain: next}
		}
	}
}

func policyVerdict(backend, chain, policy string, nat bool) chainVerdict {
	v := strings.ToLower(policy)
	if v == "" {
		v = verdictAccept
	}
	if nat && v == verdictAccept {
		return chainVerdict{verdict: verdictAccept, rule: "policy " + policy + " of " + lastWord(chain), chain: chain, policy: true}
	}
	return chainVerdict{verdict: v, rule: "policy " + policy + " of " + lastWord(chain), chain: chain, policy: true}
}

func lastWord(s string) string {
	if i := strings.LastIndexByte(s, ' '); i >= 0 {
		return s[i+1:]
	}
	return s
}

// matchKnown reports whether every modelled match of the rule holds for p. The caller treats a rule
// with unmodelled matches (Rule.Unknown) as not matching and records it as uncertain.
func (r *Rule) matchKnown(p Packet) bool {
	if r.In != nil && ifaceMatches(r.In.Name, p.In) == r.In.Neg {
		return false
	}
	if r.Out != nil && ifaceMatches(r.Out.Name, p.Out) == r.Out.Neg {
		return false
	}
	if r.Src != nil && (p.Src.IsValid() && r.Src.Prefix.Contains(p.Src)) == r.Src.Neg {
		return false
	}
	if r.Dst != nil && (p.Dst.IsValid() && r.Dst.Prefix.Contains(p.Dst)) == r.Dst.Neg {
		return false
	}
	if r.Proto != nil {
		v := r.Proto.Values[0]
		hit := v == "all" || v == "0" || v == p.Proto || (v == "6" && p.Proto == "tcp") || (v == "17" && p.Proto == "udp") || (v == "1" && p.Proto == "icmp")
		if hit == r.Proto.Neg {
			return false
		}
	}
	if r.DPort != nil && portIn(r.DPort, p.DPort, p.Proto) == r.DPort.Neg {
		return false
	}
	if r.SPort != nil && portIn(r.SPort, p.SPort, p.Proto) == r.SPort.Neg {
		return false
	}
	if r.CTState != nil && slices.Contains(r.CTState.Values, p.State) == r.CTState.Neg {
		return false
	}
	if r.DstType != nil && slices.Contains(r.DstType.Values, p.dstType()) == r.DstType.Neg {
		return false
	}
	if r.SrcType != nil && slices.Contains(r.SrcType.Values, p.srcType()) == r.SrcType.Neg {
		return false
	}
	if r.Physdev != nil && !r.Physdev.matches(p) {
		return false
	}
	if r.ICMPType != nil && (p.Proto != "icmp") != r.ICMPType.Neg {
		// The evaluator's packets are tcp/udp: an ICMP type match holds only for icmp packets, and
		// then only for the type the caller asked about (not modelled further).
		return false
	}
	return true
}

func portIn(m *PortMatch, port uint16, proto string) bool {
	if proto != "tcp" && proto != "udp" {
		return false
	}
	for _, rg := range m.Ranges {
		if port >= rg[0] && port <= rg[1] {
			return true
		}
	}
	return false
}
