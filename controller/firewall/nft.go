package firewall

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// NFTables is a parsed `nft -j list ruleset`.
type NFTables struct {
	// Tables in listing order.
	Tables []*NFTable `json:"tables"`
}

// NFTable is one nftables table.
type NFTable struct {
	// Family: ip, ip6, inet, arp, bridge, netdev.
	Family string `json:"family"`
	// Name, e.g. libvirt_network.
	Name string `json:"name"`
	// Chains in listing order.
	Chains []*NFChain `json:"chains"`
	// Sets are the named sets (and maps) of the table.
	Sets map[string]*NFSet `json:"sets,omitempty"`
	// ManagedBy is "iptables-nft" when the table belongs to iptables-nft (it is then evaluated from
	// iptables-save, which shows every match that nft prints only as "xt ...").
	ManagedBy string `json:"managed_by,omitempty"`
}

// NFChain is one chain of a table.
type NFChain struct {
	// Name of the chain.
	Name string `json:"name"`
	// Type of a base chain: filter, nat, route.
	Type string `json:"type,omitempty"`
	// Hook of a base chain: prerouting, input, forward, output, postrouting.
	Hook string `json:"hook,omitempty"`
	// Prio is the base chain priority (lower runs first).
	Prio int `json:"prio,omitempty"`
	// Policy of a base chain: accept or drop.
	Policy string `json:"policy,omitempty"`
	// Rules in order.
	Rules []*NFRule `json:"rules,omitempty"`
}

// Base reports whether the chain is hooked.
func (c *NFChain) Base() bool { return c.Hook != "" }

// NFRule is one rule: its expressions, compiled for evaluation, and its text in nft syntax.
type NFRule struct {
	// Handle of the rule.
	Handle int `json:"handle"`
	// Text is the rule rendered in nft syntax (counters left out).
	Text string `json:"text"`
	// Comment of the rule.
	Comment string `json:"comment,omitempty"`
	// Unknown lists expressions the evaluator does not model (an xt match, a map lookup, ...).
	Unknown []string `json:"unknown,omitempty"`
	exprs   []nfExpr
}

// NFSet is a named set (elements are kept as compiled values).
type NFSet struct {
	// Name of the set.
	Name string `json:"name"`
	// Type of its keys.
	Type string `json:"type,omitempty"`
	// Elems rendered as text.
	Elems []string `json:"elems,omitempty"`
	vals  []nfVal
}

// nfExpr is one compiled expression: a match or a statement.
type nfExpr struct {
	match *nfMatch
	stmt  string // accept, drop, reject, return, jump, goto, continue, queue, masquerade, snat, dnat, redirect, nop
	arg   string // jump/goto target
	text  string
	limit bool // a rate limit: treated as matching
	known bool
}

type nfMatch struct {
	op    string
	left  nfLeft
	right []nfVal
	set   string // "@name" reference, resolved at evaluation
}

type nfLeft struct {
	kind  string // meta, payload, ct, fib
	key   string // iifname, oifname, l4proto, saddr, daddr, dport, sport, protocol, state, type
	proto string // payload protocol (ip, tcp, udp, th)
}

// nfVal is one element of a right-hand side: a word, a number, a prefix or a range.
type nfVal struct {
	s      string
	n      int64
	isNum  bool
	lo, hi string // range bounds (words or numbers as text)
	prefix string // "addr/len"
}

// ParseNftJSON parses the output of `nft -j list ruleset`. It never panics on malformed input.
func ParseNftJSON(data []byte) (*NFTables, error) {
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("nft -j output: %w", err)
	}
	nt := &NFTables{}
	tables := map[string]*NFTable{}
	getTable := func(family, name string) *NFTable {
		k := family + " " + name
		t, ok := tables[k]
		if !ok {
			t = &NFTable{Family: family, Name: name, Sets: map[string]*NFSet{}}
			tables[k] = t
			nt.Tables = append(nt.Tables, t)
		}
		return t
	}
	type pendingRule struct {
		family, table, chain string
		r                    *NFRule
	}
	var rules []pendingRule
	for i, obj := range doc.Nftables {
		for kind, raw := range obj {
			switch kind {
			case "table":
				var t struct{ Family, Name string }
				if err := json.Unmarshal(raw, &t); err != nil {
					return nil, fmt.Errorf("nft -j object %d (table): %w", i, err)
				}
				getTable(t.Family, t.Name)
			case "chain":
				var c struct {
					Family, Table, Name, Type, Hook, Policy string
					Prio                                    json.RawMessage
				}
				if err := json.Unmarshal(raw, &c); err != nil {
					return nil, fmt.Errorf("nft -j object %d (chain): %w", i, err)
				}
				ch := &NFChain{Name: c.Name, Type: c.Type, Hook: c.Hook, Policy: c.Policy}
				if c.Hook != "" {
					p, err := parsePrio(c.Prio)
					if err != nil {
						return nil, fmt.Errorf("nft -j chain %s %s %s: %w", c.Family, c.Table, c.Name, err)
					}
					ch.Prio = p
					if ch.Policy == "" {
						ch.Policy = "accept"
					}
				}
				t := getTable(c.Family, c.Table)
				t.Chains = append(t.Chains, ch)
			case "rule":
				var r struct {
					Family, Table, Chain, Comment string
					Handle                        int
					Expr                          []map[string]json.RawMessage
				}
				if err := json.Unmarshal(raw, &r); err != nil {
					return nil, fmt.Errorf("nft -j object %d (rule): %w", i, err)
				}
				nr := &NFRule{Handle: r.Handle, Comment: r.Comment}
				var words []string
				for _, e := range r.Expr {
					ex := compileExpr(e)
					nr.exprs = append(nr.exprs, ex)
					if !ex.known {
						nr.Unknown = append(nr.Unknown, ex.text)
					}
					if ex.text != "" {
						words = append(words, ex.text)
					}
				}
				if r.Comment != "" {
					words = append(words, "comment "+strconv.Quote(r.Comment))
				}
				nr.Text = strings.Join(words, " ")
				rules = append(rules, pendingRule{r.Family, r.Table, r.Chain, nr})
			case "set", "map":
				var s struct {
					Family, Table, Name string
					Type                json.RawMessage
					Elem                []json.RawMessage
				}
				if err := json.Unmarshal(raw, &s); err != nil {
					return nil, fmt.Errorf("nft -j object %d (set): %w", i, err)
				}
				ns := &NFSet{Name: s.Name, Type: strings.Trim(string(s.Type), `"`)}
				for _, e := range s.Elem {
					v := compileVals(e)
					ns.vals = append(ns.vals, v...)
					for _, x := range v {
						ns.Elems = append(ns.Elems, x.String())
					}
				}
				getTable(s.Family, s.Table).Sets[s.Name] = ns
			}
		}
	}
	for _, pr := range rules {
		t := getTable(pr.family, pr.table)
		c := t.Chain(pr.chain)
		if c == nil {
			return nil, fmt.Errorf("nft -j: rule %d for unknown chain %s %s %s", pr.r.Handle, pr.family, pr.table, pr.chain)
		}
		c.Rules = append(c.Rules, pr.r)
	}
	for _, t := range nt.Tables {
		for _, c := range t.Chains {
			for _, r := range c.Rules {
				for _, e := range r.exprs {
					if strings.HasPrefix(e.text, "xt ") {
						t.ManagedBy = "iptables-nft"
					}
				}
			}
		}
	}
	return nt, nil
}

var prioNames = map[string]int{"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50, "srcnat": 100}

func parsePrio(raw json.RawMessage) (int, error) {
	if len(raw) == 0 {
		return 0, nil
	}
	var n int
	if err := json.Unmarshal(raw, &n); err == nil {
		return n, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return 0, fmt.Errorf("bad priority %s", raw)
	}
	// "filter", "filter + 10", "mangle - 5"
	f := strings.Fields(s)
	if len(f) != 1 && len(f) != 3 {
		return 0, fmt.Errorf("bad priority %q", s)
	}
	base, ok := prioNames[f[0]]
	if !ok {
		n, err := strconv.Atoi(f[0])
		if err != nil {
			return 0, fmt.Errorf("bad priority %q", s)
		}
		base = n
	}
	if len(f) == 3 {
		d, err := strconv.Atoi(f[2])
		if err != nil {
			return 0, fmt.Errorf("bad priority %q", s)
		}
		if f[1] == "-" {
			d = -d
		}
		base += d
	}
	return base, nil
}

// Table returns the table family/name, or nil.
func (nt *NFTables) Table(family, name string) *NFTable {
	if nt == nil {
		return nil
	}
	for _, t := range nt.Tables {
		if t.Family == family && t.Name == name {
			return t
		}
	}
	return nil
}

// Chain returns the chain with the given name, or nil.
func (t *NFTable) Chain(name string) *NFChain {
	if t == nil {
		return nil
	}
	for _, c := range t.Chains {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// String renders a value in nft syntax.
func (v nfVal) String() string {
	switch {
	case v.prefix != "":
		return v.prefix
	case v.lo != "" || v.hi != "":
		return v.lo + "-" + v.hi
	case v.isNum:
		return strconv.FormatInt(v.n, 10)
	default:
		return v.s
	}
}

func compileVals(raw json.RawMessage) []nfVal {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []nfVal{{s: s}}
	}
	var n int64
	if json.Unmarshal(raw, &n) == nil {
		return []nfVal{{n: n, isNum: true}}
	}
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) == nil {
		var out []nfVal
		for _, e := range list {
			out = append(out, compileVals(e)...)
		}
		return out
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil {
		return nil
	}
	if p, ok := obj["prefix"]; ok {
		var pr struct {
			Addr string
			Len  int
		}
		if json.Unmarshal(p, &pr) == nil {
			return []nfVal{{prefix: fmt.Sprintf("%s/%d", pr.Addr, pr.Len)}}
		}
	}
	if r, ok := obj["range"]; ok {
		var rg []json.RawMessage
		if json.Unmarshal(r, &rg) == nil && len(rg) == 2 {
			lo, hi := compileVals(rg[0]), compileVals(rg[1])
			if len(lo) == 1 && len(hi) == 1 {
				return []nfVal{{lo: lo[0].String(), hi: hi[0].String()}}
			}
		}
	}
	if s, ok := obj["set"]; ok {
		return compileVals(s)
	}
	if e, ok := obj["elem"]; ok {
		var el struct{ Val json.RawMessage }
		if json.Unmarshal(e, &el) == nil {
			return compileVals(el.Val)
		}
	}
	return nil
}

func compileLeft(raw json.RawMessage) (nfLeft, string, bool) {
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil {
		return nfLeft{}, string(raw), false
	}
	if m, ok := obj["meta"]; ok {
		var k struct{ Key string }
		_ = json.Unmarshal(m, &k)
		switch k.Key {
		case "iifname", "oifname", "iif", "oif", "l4proto":
			return nfLeft{kind: "meta", key: k.Key}, map[bool]string{true: "meta ", false: ""}[k.Key == "l4proto"] + k.Key, true
		}
		return nfLeft{kind: "meta", key: k.Key}, "meta " + k.Key, false
	}
	if p, ok := obj["payload"]; ok {
		var pl struct{ Protocol, Field string }
		_ = json.Unmarshal(p, &pl)
		l := nfLeft{kind: "payload", key: pl.Field, proto: pl.Protocol}
		text := pl.Protocol + " " + pl.Field
		switch {
		case pl.Protocol == "ip" && (pl.Field == "saddr" || pl.Field == "daddr" || pl.Field == "protocol"):
			return l, text, true
		case (pl.Protocol == "tcp" || pl.Protocol == "udp" || pl.Protocol == "th") && (pl.Field == "dport" || pl.Field == "sport"):
			return l, text, true
		}
		return l, text, false
	}
	if c, ok := obj["ct"]; ok {
		var k struct{ Key string }
		_ = json.Unmarshal(c, &k)
		return nfLeft{kind: "ct", key: k.Key}, "ct " + k.Key, k.Key == "state"
	}
	if f, ok := obj["fib"]; ok {
		var fb struct {
			Result string
			Flags  []string
		}
		_ = json.Unmarshal(f, &fb)
		text := "fib " + strings.Join(fb.Flags, " . ") + " " + fb.Result
		if fb.Result == "type" && len(fb.Flags) == 1 && fb.Flags[0] == "daddr" {
			return nfLeft{kind: "fib", key: "daddr type"}, text, true
		}
		return nfLeft{kind: "fib"}, text, false
	}
	for k := range obj {
		return nfLeft{kind: k}, k, false
	}
	return nfLeft{}, "?", false
}

func compileExpr(e map[string]json.RawMessage) nfExpr {
	keys := make([]string, 0, len(e))
	for k := range e {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) != 1 {
		return nfExpr{text: "{" + strings.Join(keys, ",") + "}"}
	}
	k, raw := keys[0], e[keys[0]]
	switch k {
	case "match":
		var m struct {
			Op          string
			Left, Right json.RawMessage
		}
		if json.Unmarshal(raw, &m) != nil {
			return nfExpr{text: "match ?"}
		}
		left, ltext, ok := compileLeft(m.Left)
		nm := &nfMatch{op: m.Op, left: left}
		var rs string
		if json.Unmarshal(m.Right, &rs) == nil && strings.HasPrefix(rs, "@") {
			nm.set = rs[1:]
		} else {
			nm.right = compileVals(m.Right)
			if len(nm.right) == 0 {
				ok = false
			}
		}
		rtext := renderRight(nm)
		op := ""
		if m.Op != "==" && m.Op != "in" {
			op = m.Op + " "
		}
		return nfExpr{match: nm, text: ltext + " " + op + rtext, known: ok}
	case "counter":
		return nfExpr{stmt: "nop", known: true}
	case "accept", "drop", "return", "continue":
		return nfExpr{stmt: k, text: k, known: true}
	case "reject":
		return nfExpr{stmt: "reject", text: "reject", known: true}
	case "queue":
		return nfExpr{stmt: "queue", text: "queue", known: true}
	case "jump", "goto":
		var t struct{ Target string }
		_ = json.Unmarshal(raw, &t)
		return nfExpr{stmt: k, arg: t.Target, text: k + " " + t.Target, known: true}
	case "masquerade", "snat", "dnat", "redirect":
		text := k
		var args map[string]json.RawMessage
		if json.Unmarshal(raw, &args) == nil {
			if a, ok := args["addr"]; ok {
				text += " to " + strings.Trim(string(a), `"`)
			}
			if p, ok := args["port"]; ok {
				text += " to :" + renderValText(p)
			}
		}
		return nfExpr{stmt: k, text: text, known: true}
	case "limit":
		return nfExpr{limit: true, text: "limit", known: true}
	case "log":
		return nfExpr{stmt: "nop", text: "log", known: true}
	case "xt":
		var x struct{ Type, Name string }
		_ = json.Unmarshal(raw, &x)
		if x.Type == "target" {
			// A non-terminating target extension (LOG, CHECKSUM, ...).
			return nfExpr{stmt: "nop", text: "xt target " + x.Name, known: true}
		}
		return nfExpr{text: "xt " + x.Type + " " + x.Name}
	case "mangle", "notrack", "ct helper", "meta", "ct", "flow", "set", "quota":
		return nfExpr{stmt: "nop", text: k, known: true}
	}
	return nfExpr{text: k}
}

func renderValText(raw json.RawMessage) string {
	vals := compileVals(raw)
	parts := make([]string, len(vals))
	for i, v := range vals {
		parts[i] = v.String()
	}
	return strings.Join(parts, ",")
}

func renderRight(m *nfMatch) string {
	if m.set != "" {
		return "@" + m.set
	}
	parts := make([]string, len(m.right))
	for i, v := range m.right {
		if !v.isNum && v.prefix == "" && v.lo == "" && (m.left.key == "iifname" || m.left.key == "oifname" || m.left.key == "iif" || m.left.key == "oif") {
			parts[i] = strconv.Quote(v.s)
		} else {
			parts[i] = v.String()
		}
	}
	if len(parts) == 1 {
		return parts[0]
	}
	if m.left.kind == "ct" {
		return strings.Join(parts, ",")
	}
	return "{ " + strings.Join(parts, ", ") + " }"
}
