package firewall

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

// firewalld's configuration is read from its files and its running state from its nftables table,
// never through D-Bus: the reader must not talk to a system bus (tests run on machines whose bus is
// not theirs), and the files plus `inet firewalld` are what firewalld itself loads and what the
// kernel enforces. Changes go through firewall-cmd (FirewalldZoneFix, FirewalldPolicyFix).

// Firewalld directories, relative to the root file system: the package's defaults and the admin's
// overrides (a file in etc replaces the one of the same name in usr/lib).
const (
	firewalldDefaultDir = "usr/lib/firewalld"
	firewalldSystemDir  = "etc/firewalld"
	// maxFirewalldFile bounds each XML file read (firewalld's own are < 2 KiB).
	maxFirewalldFile = 256 << 10
	// maxFirewalldFiles bounds the zones or policies read from one directory.
	maxFirewalldFiles = 512
)

// FirewalldConfig is firewalld's permanent configuration (its files) and, when its nftables table
// exists, its runtime state as that table shows it.
type FirewalldConfig struct {
	// DefaultZone from firewalld.conf ("public" when unset, firewalld's own default).
	DefaultZone string `json:"default_zone"`
	// Backend from firewalld.conf: "nftables" (firewalld's default) or "iptables".
	Backend string `json:"backend"`
	// Zones of the permanent configuration, by name.
	Zones []FirewalldZone `json:"zones"`
	// Policies of the permanent configuration, by name.
	Policies []FirewalldPolicy `json:"policies"`
	// Runtime is what the `inet firewalld` table says; nil when the table does not exist.
	Runtime *FirewalldRuntime `json:"runtime,omitempty"`
}

// FirewalldZone is one zone file.
type FirewalldZone struct {
	// Name is the file's name without .xml.
	Name string `json:"name"`
	// File is where it was read, e.g. "/usr/lib/firewalld/zones/libvirt.xml".
	File string `json:"file"`
	// Target: "default", "ACCEPT", "DROP", "REJECT" (%%REJECT%% in the file).
	Target string `json:"target"`
	// Interfaces bound to the zone permanently.
	Interfaces []string `json:"interfaces,omitempty"`
	// Services allowed (dhcp, dns, ...).
	Services []string `json:"services,omitempty"`
	// Protocols allowed (icmp, ...).
	Protocols []string `json:"protocols,omitempty"`
	// Ports allowed, as "53/udp".
	Ports []string `json:"ports,omitempty"`
	// RichRules summarised, e.g. "priority=32767 reject".
	RichRules []string `json:"rich_rules,omitempty"`
	// Forward is true when intra-zone forwarding is on.
	Forward bool `json:"forward,omitempty"`
}

// FirewalldPolicy is one policy file (firewalld >= 0.9): traffic from ingress zones to egress
// zones, with the pseudo zones ANY and HOST.
type FirewalldPolicy struct {
	// Name is the file's name without .xml.
	Name string `json:"name"`
	// File is where it was read.
	File string `json:"file"`
	// Target: "CONTINUE" (the default), "ACCEPT", "DROP", "REJECT".
	Target string `json:"target"`
	// Priority orders policies: negative ones run before the zones' rules, positive ones after.
	Priority int `json:"priority"`
	// Ingress and Egress zones.
	Ingress []string `json:"ingress,omitempty"`
	Egress  []string `json:"egress,omitempty"`
	// Services allowed.
	Services []string `json:"services,omitempty"`
	// Protocols allowed.
	Protocols []string `json:"protocols,omitempty"`
	// RichRules summarised.
	RichRules []string `json:"rich_rules,omitempty"`
}

// Rejects reports whether the policy's target drops or rejects what its rules do not accept.
func (p FirewalldPolicy) Rejects() bool { return p.Target == "REJECT" || p.Target == "DROP" }

// Forwards reports whether the policy applies to forwarded traffic (its egress is not only HOST).
func (p FirewalldPolicy) Forwards() bool {
	for _, z := range p.Egress {
		if z != "HOST" {
			return true
		}
	}
	return false
}

// FirewalldRuntime is firewalld's running state as its nftables table shows it.
type FirewalldRuntime struct {
	// InterfaceZones maps each interface bound to a zone to that zone (filter_INPUT_ZONES).
	InterfaceZones map[string]string `json:"interface_zones,omitempty"`
	// FallbackZone is where every other interface goes: the runtime default zone.
	FallbackZone string `json:"fallback_zone,omitempty"`
	// Zones that have chains (active zones and the default one).
	Zones []string `json:"zones,omitempty"`
	// Policies that have chains (active policies).
	Policies []string `json:"policies,omitempty"`
}

// Zone returns the permanent zone called name.
func (c *FirewalldConfig) Zone(name string) (FirewalldZone, bool) {
	if c == nil {
		return FirewalldZone{}, false
	}
	for _, z := range c.Zones {
		if z.Name == name {
			return z, true
		}
	}
	return FirewalldZone{}, false
}

// Policy returns the permanent policy called name.
func (c *FirewalldConfig) Policy(name string) (FirewalldPolicy, bool) {
	if c == nil {
		return FirewalldPolicy{}, false
	}
	for _, p := range c.Policies {
		if p.Name == name {
			return p, true
		}
	}
	return FirewalldPolicy{}, false
}

// ZoneOf returns the zone an interface is in at runtime ("" when firewalld's table is absent).
func (c *FirewalldConfig) ZoneOf(iface string) string {
	if c == nil || c.Runtime == nil {
		return ""
	}
	if z, ok := c.Runtime.InterfaceZones[iface]; ok {
		return z
	}
	return c.Runtime.FallbackZone
}

// xml shapes of firewalld's files; unknown elements are ignored.
type fwdName struct {
	Name string `xml:"name,attr"`
}

type fwdValue struct {
	Value string `xml:"value,attr"`
}

type fwdPort struct {
	Port     string `xml:"port,attr"`
	Protocol string `xml:"protocol,attr"`
}

type fwdRich struct {
	Family   string    `xml:"family,attr"`
	Priority string    `xml:"priority,attr"`
	Service  *fwdName  `xml:"service"`
	Port     *fwdPort  `xml:"port"`
	Protocol *fwdValue `xml:"protocol"`
	Accept   *struct{} `xml:"accept"`
	Reject   *struct{} `xml:"reject"`
	Drop     *struct{} `xml:"drop"`
}

type fwdZoneXML struct {
	XMLName    xml.Name   `xml:"zone"`
	Target     string     `xml:"target,attr"`
	Interfaces []fwdName  `xml:"interface"`
	Services   []fwdName  `xml:"service"`
	Protocols  []fwdValue `xml:"protocol"`
	Ports      []fwdPort  `xml:"port"`
	Rules      []fwdRich  `xml:"rule"`
	Forward    *struct{}  `xml:"forward"`
}

type fwdPolicyXML struct {
	XMLName   xml.Name   `xml:"policy"`
	Target    string     `xml:"target,attr"`
	Priority  string     `xml:"priority,attr"`
	Ingress   []fwdName  `xml:"ingress-zone"`
	Egress    []fwdName  `xml:"egress-zone"`
	Services  []fwdName  `xml:"service"`
	Protocols []fwdValue `xml:"protocol"`
	Rules     []fwdRich  `xml:"rule"`
}

func decodeStrict(data []byte, v any) error {
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = true
	return d.Decode(v)
}

func names(ns []fwdName) []string {
	var out []string
	for _, n := range ns {
		if n.Name != "" {
			out = append(out, n.Name)
		}
	}
	return out
}

func values(vs []fwdValue) []string {
	var out []string
	for _, v := range vs {
		if v.Value != "" {
			out = append(out, v.Value)
		}
	}
	return out
}

func (r fwdRich) String() string {
	var w []string
	if r.Priority != "" {
		w = append(w, "priority="+r.Priority)
	}
	if r.Family != "" {
		w = append(w, "family="+r.Family)
	}
	switch {
	case r.Service != nil:
		w = append(w, "service="+r.Service.Name)
	case r.Port != nil:
		w = append(w, "port="+r.Port.Port+"/"+r.Port.Protocol)
	case r.Protocol != nil:
		w = append(w, "protocol="+r.Protocol.Value)
	}
	switch {
	case r.Accept != nil:
		w = append(w, "accept")
	case r.Reject != nil:
		w = append(w, "reject")
	case r.Drop != nil:
		w = append(w, "drop")
	}
	return strings.Join(w, " ")
}

func richRules(rs []fwdRich) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.String())
	}
	return out
}

// fwdTarget normalises a target attribute: firewalld writes a zone's REJECT as %%REJECT%%.
func fwdTarget(t, dflt string) string {
	t = strings.Trim(strings.TrimSpace(t), "%")
	if t == "" {
		return dflt
	}
	return strings.ToUpper(t)
}

// ParseFirewalldZone parses one zone file (name is its base name without .xml).
func ParseFirewalldZone(name string, data []byte) (FirewalldZone, error) {
	var x fwdZoneXML
	if err := decodeStrict(data, &x); err != nil {
		return FirewalldZone{}, fmt.Errorf("firewalld zone %s: %w", name, err)
	}
	z := FirewalldZone{Name: name, Target: fwdTarget(x.Target, "default"), Interfaces: names(x.Interfaces),
		Services: names(x.Services), Protocols: values(x.Protocols), RichRules: richRules(x.Rules), Forward: x.Forward != nil}
	if z.Target == "DEFAULT" {
		z.Target = "default"
	}
	for _, p := range x.Ports {
		z.Ports = append(z.Ports, p.Port+"/"+p.Protocol)
	}
	return z, nil
}

// ParseFirewalldPolicy parses one policy file (name is its base name without .xml).
func ParseFirewalldPolicy(name string, data []byte) (FirewalldPolicy, error) {
	var x fwdPolicyXML
	if err := decodeStrict(data, &x); err != nil {
		return FirewalldPolicy{}, fmt.Errorf("firewalld policy %s: %w", name, err)
	}
	p := FirewalldPolicy{Name: name, Target: fwdTarget(x.Target, "CONTINUE"), Priority: -1,
		Ingress: names(x.Ingress), Egress: names(x.Egress), Services: names(x.Services),
		Protocols: values(x.Protocols), RichRules: richRules(x.Rules)}
	if s := strings.TrimSpace(x.Priority); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < -32768 || n > 32767 {
			return FirewalldPolicy{}, fmt.Errorf("firewalld policy %s: priority %q is not an integer in [-32768, 32767]", name, s)
		}
		p.Priority = n
	}
	return p, nil
}

// ReadFirewalldConfig reads firewalld's permanent configuration from the root file system files. It
// returns nil (and no error) when firewalld is not installed (neither directory exists). Files that
// do not parse are reported in errs and left out.
func ReadFirewalldConfig(files fs.FS) (cfg *FirewalldConfig, errs []string) {
	_, e1 := fs.Stat(files, firewalldDefaultDir)
	_, e2 := fs.Stat(files, firewalldSystemDir)
	if e1 != nil && e2 != nil {
		return nil, nil
	}
	cfg = &FirewalldConfig{DefaultZone: "public", Backend: "nftables"}
	if b, err := fs.ReadFile(files, path.Join(firewalldSystemDir, "firewalld.conf")); err == nil {
		vars := ParseShellVars(string(b))
		if v := vars["DefaultZone"]; v != "" {
			cfg.DefaultZone = v
		}
		if v := vars["FirewallBackend"]; v != "" {
			cfg.Backend = v
		}
	}
	zones := map[string]FirewalldZone{}
	pols := map[string]FirewalldPolicy{}
	for _, dir := range []string{firewalldDefaultDir, firewalldSystemDir} {
		for _, f := range xmlFiles(files, path.Join(dir, "zones")) {
			name := strings.TrimSuffix(path.Base(f), ".xml")
			b, err := readBounded(files, f)
			if err == nil {
				var z FirewalldZone
				if z, err = ParseFirewalldZone(name, b); err == nil {
					z.File = "/" + f
					zones[name] = z
					continue
				}
			}
			errs = append(errs, err.Error())
		}
		for _, f := range xmlFiles(files, path.Join(dir, "policies")) {
			name := strings.TrimSuffix(path.Base(f), ".xml")
			b, err := readBounded(files, f)
			if err == nil {
				var p FirewalldPolicy
				if p, err = ParseFirewalldPolicy(name, b); err == nil {
					p.File = "/" + f
					pols[name] = p
					continue
				}
			}
			errs = append(errs, err.Error())
		}
	}
	for _, z := range zones {
		cfg.Zones = append(cfg.Zones, z)
	}
	for _, p := range pols {
		cfg.Policies = append(cfg.Policies, p)
	}
	sort.Slice(cfg.Zones, func(i, j int) bool { return cfg.Zones[i].Name < cfg.Zones[j].Name })
	sort.Slice(cfg.Policies, func(i, j int) bool { return cfg.Policies[i].Name < cfg.Policies[j].Name })
	return cfg, errs
}

func xmlFiles(files fs.FS, dir string) []string {
	ents, err := fs.ReadDir(files, dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ".xml") {
			out = append(out, path.Join(dir, e.Name()))
		}
		if len(out) == maxFirewalldFiles {
			break
		}
	}
	return out
}

func readBounded(files fs.FS, name string) ([]byte, error) {
	st, err := fs.Stat(files, name)
	if err != nil {
		return nil, err
	}
	if st.Size() > maxFirewalldFile {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d read", name, st.Size(), maxFirewalldFile)
	}
	return fs.ReadFile(files, name)
}

// firewalldTable returns the nft table firewalld's nftables backend owns.
func (nt *NFTables) firewalldTable() *NFTable {
	if nt == nil {
		return nil
	}
	return nt.Table("inet", "firewalld")
}

// FirewalldRuntimeOf reads firewalld's running state from its nftables table: which zone each
// interface is bound to (the gotos of filter_INPUT_ZONES), the fallback (default) zone, and the
// zones and policies that have chains. nil when the table does not exist.
func FirewalldRuntimeOf(nt *NFTables) *FirewalldRuntime {
	t := nt.firewalldTable()
	if t == nil {
		return nil
	}
	rt := &FirewalldRuntime{InterfaceZones: map[string]string{}}
	zones, pols := map[string]bool{}, map[string]bool{}
	for _, c := range t.Chains {
		if kind, name := FirewalldChainOwner(c.Name); kind == "zone" {
			zones[name] = true
		} else if kind == "policy" {
			pols[name] = true
		}
	}
	if c := t.Chain("filter_INPUT_ZONES"); c != nil {
		for _, r := range c.Rules {
			iface, target := "", ""
			for _, e := range r.exprs {
				if e.match != nil && e.match.left.kind == "meta" && e.match.left.key == "iifname" &&
					(e.match.op == "==" || e.match.op == "") && len(e.match.right) == 1 {
					iface = e.match.right[0].String()
				}
				if e.stmt == "goto" || e.stmt == "jump" {
					target = e.arg
				}
			}
			zone, ok := strings.CutPrefix(target, "filter_IN_")
			if !ok {
				continue
			}
			if iface == "" {
				rt.FallbackZone = zone
			} else if _, seen := rt.InterfaceZones[iface]; !seen {
				rt.InterfaceZones[iface] = zone
			}
		}
	}
	rt.Zones = sortedKeys(zones)
	rt.Policies = sortedKeys(pols)
	return rt
}

var firewalldChainParts = []string{"_pre", "_log", "_deny", "_allow", "_post"}

// FirewalldChainOwner names the zone or policy a chain of firewalld's nftables table belongs to:
// ("zone", "libvirt") for filter_IN_libvirt_allow, ("policy", "allow-host-ipv6") for
// filter_IN_policy_allow-host-ipv6, ("", "") for firewalld's dispatch chains (filter_FORWARD, ...).
func FirewalldChainOwner(chain string) (kind, name string) {
	rest := ""
	for _, pre := range []string{"filter_IN_", "filter_FWD_", "filter_OUT_", "nat_PRE_", "nat_POST_", "nat_OUT_", "mangle_PRE_", "filter_PRE_"} {
		if r, ok := strings.CutPrefix(chain, pre); ok {
			rest = r
			break
		}
	}
	if rest == "" {
		return "", ""
	}
	for _, suf := range firewalldChainParts {
		if r, ok := strings.CutSuffix(rest, suf); ok && r != "" {
			rest = r
			break
		}
	}
	if p, ok := strings.CutPrefix(rest, "policy_"); ok && p != "" {
		return "policy", p
	}
	return "zone", rest
}

// firewalldChain returns the chain name of an evaluator result when it is in firewalld's table
// (results name chains as "nftables inet firewalld CHAIN").
func firewalldChain(chain string) (string, bool) {
	return strings.CutPrefix(chain, "nftables inet firewalld ")
}
