package firewall

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// nftHooks maps the evaluator's hooks to nftables hook names and the chain types that decide there.
var nftHooks = map[Hook]struct{ hook, typ string }{
	HookForward:     {"forward", "filter"},
	HookInput:       {"input", "filter"},
	HookPostrouting: {"postrouting", ""},
}

// baseChains returns the base chains of native nftables tables (not those of iptables-nft) that
// see IPv4 packets at hook.
func (nt *NFTables) baseChains(hook Hook) []baseChain {
	if nt == nil {
		return nil
	}
	h := nftHooks[hook]
	var out []baseChain
	for _, t := range nt.Tables {
		if t.ManagedBy != "" || (t.Family != "ip" && t.Family != "inet") {
			continue
		}
		for _, c := range t.Chains {
			if c.Hook != h.hook || (h.typ != "" && c.Type != h.typ) {
				continue
			}
			table, chain := t, c
			out = append(out, baseChain{
				backend: "nftables", name: fmt.Sprintf("nftables %s %s %s", t.Family, t.Name, c.Name),
				prio: c.Prio, nat: c.Type == "nat", policy: c.Policy,
				eval: func(p Packet, tr *tracer) chainVerdict { return nt.evalBase(table, chain, p, tr) },
			})
		}
	}
	return out
}

type nfFrame struct {
	chain *NFChain
	pos   int
}

func (nt *NFTables) evalBase(t *NFTable, base *NFChain, p Packet, tr *tracer) chainVerdict {
	qual := func(c *NFChain) string { return fmt.Sprintf("nftables %s %s %s", t.Family, t.Name, c.Name) }
	policy := func() chainVerdict {
		v := base.Policy
		if v == "" {
			v = verdictAccept
		}
		return chainVerdict{verdict: v, rule: "policy " + v + " of " + base.Name, chain: qual(base), policy: true}
	}
	var stack []nfFrame
	cur := nfFrame{chain: base}
	for {
		if cur.pos >= len(cur.chain.Rules) {
			if len(stack) == 0 {
				return policy()
			}
			cur, stack = stack[len(stack)-1], stack[:len(stack)-1]
			continue
		}
		r := cur.chain.Rules[cur.pos]
		cur.pos++
		tr.steps++
		if tr.steps > maxSteps {
			return chainVerdict{verdict: "unknown", rule: "evaluation step limit reached (jump loop?)", chain: qual(cur.chain)}
		}
		stmt, arg, matched, unknown := nt.evalRule(t, r, p)
		if !matched {
			continue
		}
		if unknown != "" {
			tr.uncertain = append(tr.uncertain, r.Text)
			tr.add("%s: %s (assumed not to match: %s not modelled)", qual(cur.chain), r.Text, unknown)
			continue
		}
		switch stmt {
		case "", "continue":
			continue
		case "accept", "drop", "reject":
			tr.add("%s: %s", qual(cur.chain), r.Text)
			return chainVerdict{verdict: stmt, rule: r.Text, chain: qual(cur.chain)}
		case "masquerade", "snat":
			tr.add("%s: %s", qual(cur.chain), r.Text)
			return chainVerdict{verdict: verdictAccept, nat: stmt, rule: r.Text, chain: qual(cur.chain)}
		case "dnat", "redirect":
			tr.add("%s: %s", qual(cur.chain), r.Text)
			return chainVerdict{verdict: verdictAccept, rule: r.Text, chain: qual(cur.chain)}
		case "queue":
			tr.add("%s: %s (queued to user space: verdict unknown)", qual(cur.chain), r.Text)
			return chainVerdict{verdict: "unknown", rule: r.Text, chain: qual(cur.chain)}
		case "return":
			tr.add("%s: %s", qual(cur.chain), r.Text)
			if len(stack) == 0 {
				return policy()
			}
			cur, stack = stack[len(stack)-1], stack[:len(stack)-1]
		case "jump", "goto":
			next := t.Chain(arg)
			if next == nil {
				tr.add("%s: %s (target chain missing)", qual(cur.chain), r.Text)
				continue
			}
			tr.add("%s: %s", qual(cur.chain), r.Text)
			if stmt == "jump" {
				stack = append(stack, cur)
			}
			cur = nfFrame{chain: next}
		}
	}
}

// evalRule runs the rule's expressions in order: matches must all hold; the first verdict or NAT
// statement is returned. unknown names the first unmodelled match when all modelled ones held.
func (nt *NFTables) evalRule(t *NFTable, r *NFRule, p Packet) (stmt, arg string, matched bool, unknown string) {
	for _, e := range r.exprs {
		switch {
		case e.match != nil:
			if !e.known {
				if unknown == "" {
					unknown = e.text
				}
				continue
			}
			if !nt.evalMatch(t, e.match, p) {
				return "", "", false, ""
			}
		case e.limit:
		case !e.known:
			if unknown == "" {
				unknown = e.text
			}
		case e.stmt == "nop":
		default:
			return e.stmt, e.arg, true, unknown
		}
	}
	return "", "", true, unknown
}

func (nt *NFTables) evalMatch(t *NFTable, m *nfMatch, p Packet) bool {
	vals := m.right
	if m.set != "" {
		s, ok := t.Sets[m.set]
		if !ok {
			return false
		}
		vals = s.vals
	}
	// A transport match implies the protocol (tcp dport 80 never matches udp).
	if m.left.kind == "payload" && (m.left.proto == "tcp" || m.left.proto == "udp") && p.Proto != m.left.proto {
		return false
	}
	if m.left.kind == "payload" && m.left.proto == "th" && p.Proto != "tcp" && p.Proto != "udp" {
		return false
	}
	var hit bool
	switch m.left.kind + " " + m.left.key {
	case "meta iifname", "meta iif":
		hit = anyVal(vals, func(v nfVal) bool { return ifaceMatches(v.s, p.In) })
	case "meta oifname", "meta oif":
		hit = anyVal(vals, func(v nfVal) bool { return ifaceMatches(v.s, p.Out) })
	case "meta l4proto", "payload protocol":
		hit = anyVal(vals, func(v nfVal) bool { return protoEq(v, p.Proto) })
	case "payload saddr":
		hit = anyVal(vals, func(v nfVal) bool { return addrIn(v, p.Src) })
	case "payload daddr":
		hit = anyVal(vals, func(v nfVal) bool { return addrIn(v, p.Dst) })
	case "payload dport", "payload sport":
		port := p.DPort
		if m.left.key == "sport" {
			port = p.SPort
		}
		switch m.op {
		case "<", ">", "<=", ">=":
			if len(vals) != 1 || !vals[0].isNum {
				return false
			}
			n := int64(port)
			switch m.op {
			case "<":
				return n < vals[0].n
			case ">":
				return n > vals[0].n
			case "<=":
				return n <= vals[0].n
			default:
				return n >= vals[0].n
			}
		}
		hit = anyVal(vals, func(v nfVal) bool { return portVal(v, port) })
	case "ct state":
		hit = anyVal(vals, func(v nfVal) bool { return strings.EqualFold(v.s, p.State) })
	case "fib daddr type":
		hit = anyVal(vals, func(v nfVal) bool { return strings.EqualFold(v.s, p.dstType()) })
	default:
		return false
	}
	if m.op == "!=" {
		return !hit
	}
	return hit
}

func anyVal(vals []nfVal, f func(nfVal) bool) bool { return slices.ContainsFunc(vals, f) }

var protoNumbers = map[string]int64{"tcp": 6, "udp": 17, "icmp": 1}

func protoEq(v nfVal, proto string) bool {
	if v.isNum {
		return protoNumbers[proto] == v.n
	}
	return v.s == proto
}

func addrIn(v nfVal, a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	switch {
	case v.prefix != "":
		p, err := netip.ParsePrefix(v.prefix)
		return err == nil && p.Contains(a)
	case v.lo != "":
		lo, err1 := netip.ParseAddr(v.lo)
		hi, err2 := netip.ParseAddr(v.hi)
		return err1 == nil && err2 == nil && a.Compare(lo) >= 0 && a.Compare(hi) <= 0
	default:
		b, err := netip.ParseAddr(v.s)
		return err == nil && b == a
	}
}

func portVal(v nfVal, port uint16) bool {
	num := func(s string) (int64, bool) {
		if n, err := strconv.ParseInt(s, 10, 32); err == nil {
			return n, true
		}
		if p, ok := servicePorts[s]; ok {
			return int64(p), true
		}
		return 0, false
	}
	switch {
	case v.isNum:
		return v.n == int64(port)
	case v.lo != "":
		lo, ok1 := num(v.lo)
		hi, ok2 := num(v.hi)
		return ok1 && ok2 && int64(port) >= lo && int64(port) <= hi
	default:
		n, ok := num(v.s)
		return ok && n == int64(port)
	}
}
