package firewall

import (
	"bufio"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// IPTables is one parsed iptables-save dump (one variant: nft or legacy).
type IPTables struct {
	// Variant is "nft" (iptables-nft) or "legacy".
	Variant string `json:"variant"`
	// Tables in dump order.
	Tables []*Table `json:"tables"`
}

// Table is one *table section of an iptables-save dump.
type Table struct {
	// Name: filter, nat, mangle, raw, security.
	Name string `json:"name"`
	// Chains in declaration order (built-in chains first, as iptables-save prints them).
	Chains []*Chain `json:"chains"`
}

// Chain is one chain with its rules.
type Chain struct {
	// Name, e.g. FORWARD or LIBVIRT_FWO.
	Name string `json:"name"`
	// Policy of a built-in chain (ACCEPT, DROP); "" for user-defined chains.
	Policy string `json:"policy,omitempty"`
	// Rules in order.
	Rules []*Rule `json:"rules,omitempty"`
}

// Builtin reports whether the chain is a built-in (hooked) chain.
func (c *Chain) Builtin() bool { return c.Policy != "" }

// IfaceMatch is an -i/-o match. A trailing "+" in Name is a prefix wildcard.
type IfaceMatch struct {
	Name string `json:"name"`
	Neg  bool   `json:"neg,omitempty"`
}

// PrefixMatch is an -s/-d match.
type PrefixMatch struct {
	Prefix netip.Prefix `json:"prefix"`
	Neg    bool         `json:"neg,omitempty"`
}

// PortMatch is a --dport/--sport/--dports match: ranges lo..hi inclusive.
type PortMatch struct {
	Ranges [][2]uint16 `json:"ranges"`
	Neg    bool        `json:"neg,omitempty"`
}

// ListMatch is a match on one of a set of words (conntrack states, address types, protocols).
type ListMatch struct {
	Values []string `json:"values"`
	Neg    bool     `json:"neg,omitempty"`
}

// Rule is one "-A CHAIN ..." line, structured.
type Rule struct {
	// Text is the line as iptables-save printed it.
	Text string `json:"text"`
	// In and Out are -i / -o.
	In  *IfaceMatch `json:"in,omitempty"`
	Out *IfaceMatch `json:"out,omitempty"`
	// Src and Dst are -s / -d.
	Src *PrefixMatch `json:"src,omitempty"`
	Dst *PrefixMatch `json:"dst,omitempty"`
	// Proto is -p (lower case: tcp, udp, icmp, all).
	Proto *ListMatch `json:"proto,omitempty"`
	// SPort and DPort come from -m tcp/udp --sport/--dport and -m multiport.
	SPort *PortMatch `json:"sport,omitempty"`
	DPort *PortMatch `json:"dport,omitempty"`
	// CTState comes from -m conntrack --ctstate or -m state --state (upper case).
	CTState *ListMatch `json:"ctstate,omitempty"`
	// SrcType and DstType come from -m addrtype.
	SrcType *ListMatch `json:"src_type,omitempty"`
	DstType *ListMatch `json:"dst_type,omitempty"`
	// ICMPType is -m icmp --icmp-type.
	ICMPType *ListMatch `json:"icmp_type,omitempty"`
	// Physdev is -m physdev (bridge ports, see PhysdevMatch).
	Physdev *PhysdevMatch `json:"physdev,omitempty"`
	// Comment is -m comment --comment.
	Comment string `json:"comment,omitempty"`
	// Target is the -j / -g argument (ACCEPT, DROP, REJECT, RETURN, MASQUERADE, LOG, a chain name).
	Target string `json:"target,omitempty"`
	// Goto is true for -g.
	Goto bool `json:"goto,omitempty"`
	// TargetArgs are the options after the target (--reject-with ..., --to-ports ...).
	TargetArgs []string `json:"target_args,omitempty"`
	// Modules are the -m modules used, in order.
	Modules []string `json:"modules,omitempty"`
	// Unknown lists matches the evaluator does not model (e.g. "-m set --match-set x src"): such a
	// rule is assumed not to match, and the evaluation says so.
	Unknown []string `json:"unknown,omitempty"`
}

// ParseIptablesSave parses iptables-save output. variant is recorded as given ("nft" or "legacy").
// It never panics on malformed input; it returns an error naming the line it could not parse.
func ParseIptablesSave(text, variant string) (*IPTables, error) {
	ipt := &IPTables{Variant: variant}
	var cur *Table
	chains := map[string]*Chain{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "*"):
			if cur != nil {
				return nil, fmt.Errorf("iptables-save line %d: table %q starts before COMMIT of %q", n, line[1:], cur.Name)
			}
			cur = &Table{Name: line[1:]}
			if cur.Name == "" {
				return nil, fmt.Errorf("iptables-save line %d: empty table name", n)
			}
			chains = map[string]*Chain{}
		case line == "COMMIT":
			if cur == nil {
				return nil, fmt.Errorf("iptables-save line %d: COMMIT outside a table", n)
			}
			ipt.Tables = append(ipt.Tables, cur)
			cur = nil
		case strings.HasPrefix(line, ":"):
			if cur == nil {
				return nil, fmt.Errorf("iptables-save line %d: chain outside a table", n)
			}
			f := strings.Fields(line[1:])
			if len(f) < 2 {
				return nil, fmt.Errorf("iptables-save line %d: bad chain line %q", n, line)
			}
			c := &Chain{Name: f[0]}
			if f[1] != "-" {
				c.Policy = f[1]
			}
			if _, dup := chains[c.Name]; dup {
				return nil, fmt.Errorf("iptables-save line %d: chain %s declared twice", n, c.Name)
			}
			chains[c.Name] = c
			cur.Chains = append(cur.Chains, c)
		case strings.HasPrefix(line, "-A ") || strings.HasPrefix(line, "-I "):
			if cur == nil {
				return nil, fmt.Errorf("iptables-save line %d: rule outside a table", n)
			}
			words, err := splitWords(line)
			if err != nil {
				return nil, fmt.Errorf("iptables-save line %d: %w", n, err)
			}
			if len(words) < 2 {
				return nil, fmt.Errorf("iptables-save line %d: rule without chain", n)
			}
			c, ok := chains[words[1]]
			if !ok {
				return nil, fmt.Errorf("iptables-save line %d: rule for undeclared chain %s", n, words[1])
			}
			r, err := parseRule(words[2:])
			if err != nil {
				return nil, fmt.Errorf("iptables-save line %d (%s): %w", n, line, err)
			}
			r.Text = line
			c.Rules = append(c.Rules, r)
		default:
			return nil, fmt.Errorf("iptables-save line %d: unexpected %q", n, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("iptables-save: %w", err)
	}
	if cur != nil {
		return nil, fmt.Errorf("iptables-save: table %s has no COMMIT", cur.Name)
	}
	return ipt, nil
}

// splitWords splits a rule line like a shell would for iptables-save's quoting ("..." with \"
// escapes), without ever interpreting anything else.
func splitWords(line string) ([]string, error) {
	var words []string
	var b strings.Builder
	in, quoted := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quoted && c == '\\' && i+1 < len(line) && (line[i+1] == '"' || line[i+1] == '\\'):
			b.WriteByte(line[i+1])
			i++
		case c == '"':
			quoted = !quoted
			in = true
		case !quoted && (c == ' ' || c == '\t'):
			if in {
				words = append(words, b.String())
				b.Reset()
				in = false
			}
		default:
			b.WriteByte(c)
			in = true
		}
	}
	if quoted {
		return nil, fmt.Errorf("unterminated quote")
	}
	if in {
		words = append(words, b.String())
	}
	return words, nil
}

// optionArgs are how many values the options the parser understands take.
var optionArgs = map[string]int{
	"-i": 1, "--in-interface": 1, "-o": 1, "--out-interface": 1, "-s": 1, "--source": 1,
	"-d": 1, "--destination": 1, "-p": 1, "--protocol": 1, "-m": 1, "--match": 1, "-j": 1, "--jump": 1,
	"-g": 1, "--goto": 1, "-f": 0, "--fragment": 0,
	"--dport": 1, "--destination-port": 1, "--sport": 1, "--source-port": 1, "--dports": 1,
	"--destination-ports": 1, "--sports": 1, "--source-ports": 1, "--ports": 1,
	"--ctstate": 1, "--state": 1, "--comment": 1, "--src-type": 1, "--dst-type": 1,
	"--limit-iface-in": 0, "--limit-iface-out": 0, "--icmp-type": 1,
	"--limit": 1, "--limit-burst": 1, "--tcp-flags": 2, "--syn": 0,
	"--physdev-in": 1, "--physdev-out": 1, "--physdev-is-in": 0, "--physdev-is-out": 0, "--physdev-is-bridged": 0,
}

func parseRule(words []string) (*Rule, error) {
	r := &Rule{}
	neg := false
	module := ""
	for i := 0; i < len(words); i++ {
		w := words[i]
		if w == "!" {
			neg = true
			continue
		}
		if r.Target != "" {
			// Everything after the target belongs to it.
			r.TargetArgs = append(r.TargetArgs, words[i:]...)
			break
		}
		if !strings.HasPrefix(w, "-") {
			return nil, fmt.Errorf("unexpected word %q", w)
		}
		nargs, known := optionArgs[w]
		if !known {
			// An option of a module the evaluator does not model: keep it, with its values.
			j := i + 1
			for j < len(words) && !strings.HasPrefix(words[j], "-") && words[j] != "!" {
				j++
			}
			u := strings.Join(words[i:j], " ")
			if neg {
				u = "! " + u
			}
			if module != "" {
				u = "-m " + module + " " + u
			}
			r.Unknown = append(r.Unknown, u)
			i = j - 1
			neg = false
			continue
		}
		if i+nargs >= len(words) {
			return nil, fmt.Errorf("option %s needs %d value(s)", w, nargs)
		}
		vals := words[i+1 : i+1+nargs]
		i += nargs
		var v string
		if nargs > 0 {
			v = vals[0]
		}
		switch w {
		case "-i", "--in-interface":
			r.In = &IfaceMatch{Name: v, Neg: neg}
		case "-o", "--out-interface":
			r.Out = &IfaceMatch{Name: v, Neg: neg}
		case "-s", "--source", "-d", "--destination":
			p, err := parsePrefix(v)
			if err != nil {
				return nil, fmt.Errorf("%s %q: %w", w, v, err)
			}
			m := &PrefixMatch{Prefix: p, Neg: neg}
			if w == "-s" || w == "--source" {
				r.Src = m
			} else {
				r.Dst = m
			}
		case "-p", "--protocol":
			r.Proto = &ListMatch{Values: []string{strings.ToLower(v)}, Neg: neg}
		case "-m", "--match":
			module = v
			r.Modules = append(r.Modules, v)
			if neg {
				return nil, fmt.Errorf("negated -m %s", v)
			}
		case "-j", "--jump", "-g", "--goto":
			r.Target = v
			r.Goto = w == "-g" || w == "--goto"
		case "-f", "--fragment":
			r.Unknown = append(r.Unknown, strings.TrimSpace(map[bool]string{true: "! ", false: ""}[neg]+w))
		case "--dport", "--destination-port", "--dports", "--destination-ports",
			"--sport", "--source-port", "--sports", "--source-ports", "--ports":
			pm, err := parsePorts(v)
			if err != nil {
				return nil, fmt.Errorf("%s %q: %w", w, v, err)
			}
			pm.Neg = neg
			switch w {
			case "--sport", "--source-port", "--sports", "--source-ports":
				r.SPort = pm
			case "--ports":
				r.Unknown = append(r.Unknown, "--ports "+v)
			default:
				r.DPort = pm
			}
		case "--ctstate", "--state":
			r.CTState = &ListMatch{Values: strings.Split(strings.ToUpper(v), ","), Neg: neg}
		case "--comment":
			r.Comment = v
		case "--src-type":
			r.SrcType = &ListMatch{Values: strings.Split(strings.ToUpper(v), ","), Neg: neg}
		case "--dst-type":
			r.DstType = &ListMatch{Values: strings.Split(strings.ToUpper(v), ","), Neg: neg}
		case "--limit-iface-in", "--limit-iface-out":
			r.Unknown = append(r.Unknown, "-m addrtype "+w)
		case "--icmp-type":
			r.ICMPType = &ListMatch{Values: []string{v}, Neg: neg}
		case "--physdev-in", "--physdev-out", "--physdev-is-in", "--physdev-is-out", "--physdev-is-bridged":
			r.physdevOption(w, v, neg)
		case "--limit", "--limit-burst":
			// Rate limits only thin out logging here; the evaluator treats them as matching.
		case "--tcp-flags", "--syn":
			// A NEW tcp connection starts with SYN; --syn / flag tests are modelled as matching NEW
			// packets only.
			r.CTState = andSyn(r.CTState, neg)
		}
		neg = false
	}
	if neg {
		return nil, fmt.Errorf("negation (!) without an option after it")
	}
	return r, nil
}

// andSyn records a SYN requirement as a conntrack state NEW condition (the evaluator's packets are
// connection starts exactly when they are NEW).
func andSyn(cur *ListMatch, neg bool) *ListMatch {
	if cur != nil {
		return cur
	}
	return &ListMatch{Values: []string{"NEW"}, Neg: neg}
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		addr, bits, _ := strings.Cut(s, "/")
		a, err := netip.ParseAddr(addr)
		if err != nil {
			return netip.Prefix{}, err
		}
		if n, err := strconv.Atoi(bits); err == nil {
			p, err := a.Prefix(n)
			if err != nil {
				return netip.Prefix{}, err
			}
			return p, nil
		}
		// Dotted netmask, e.g. 255.255.255.0.
		m, err := netip.ParseAddr(bits)
		if err != nil || !m.Is4() {
			return netip.Prefix{}, fmt.Errorf("bad mask %q", bits)
		}
		b := m.As4()
		ones := 0
		for _, x := range b {
			for k := 7; k >= 0; k-- {
				if x&(1<<k) == 0 {
					goto done
				}
				ones++
			}
		}
	done:
		return a.Prefix(ones)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func parsePorts(s string) (*PortMatch, error) {
	pm := &PortMatch{}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, ":")
		l, err := parsePort(lo, 0)
		if err != nil {
			return nil, err
		}
		h := l
		if isRange {
			if h, err = parsePort(hi, 65535); err != nil {
				return nil, err
			}
		}
		if h < l {
			return nil, fmt.Errorf("port range %s reversed", part)
		}
		pm.Ranges = append(pm.Ranges, [2]uint16{l, h})
	}
	return pm, nil
}

func parsePort(s string, empty uint16) (uint16, error) {
	if s == "" {
		return empty, nil
	}
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		if p, ok := servicePorts[s]; ok {
			return p, nil
		}
		return 0, fmt.Errorf("bad port %q", s)
	}
	return uint16(n), nil
}

// servicePorts are the service names iptables-save may print instead of numbers.
var servicePorts = map[string]uint16{"domain": 53, "bootps": 67, "bootpc": 68, "http": 80, "https": 443,
	"ssh": 22}

// Table returns the table with the given name, or nil.
func (ipt *IPTables) Table(name string) *Table {
	if ipt == nil {
		return nil
	}
	for _, t := range ipt.Tables {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// Chain returns the chain with the given name, or nil.
func (t *Table) Chain(name string) *Chain {
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

// Empty reports whether the dump holds no table at all.
func (ipt *IPTables) Empty() bool { return ipt == nil || len(ipt.Tables) == 0 }
