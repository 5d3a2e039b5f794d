package netstack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
	"gopkg.in/yaml.v3"
)

// NetplanFile is kvmnet's own netplan file. 90- sorts after cloud-init's 50-cloud-init.yaml, so
// its definitions are read last; matching by MAC keeps them right when the kernel name changes.
const NetplanFile = "/etc/netplan/90-kvmnet.yaml"

// NetplanDir is the directory NetplanFile and neutralised user files live in.
const NetplanDir = "/etc/netplan"

// Netplan is the netplan backend (renderer networkd or NetworkManager): it writes NetplanFile,
// neutralises user definitions bound to interfaces the guest does not have, and runs
// `netplan generate` (its error shown verbatim) before `netplan apply`.
type Netplan struct {
	root string
}

// NewNetplan returns the netplan backend reading the guest's files under root.
func NewNetplan(root string) *Netplan { return &Netplan{root: root} }

// Name implements Backend.
func (n *Netplan) Name() string { return NameNetplan }

// Stack implements Backend: netplan rendering for networkd (a NetworkManager renderer makes the
// NIC NetworkManager's, which Chooser hands to agent/apply's NetworkManager path).
func (n *Netplan) Stack() kvmnetv1.NetworkStack { return kvmnetv1.NetworkStack_NETWORK_STACK_NETPLAN }

// IsManaging implements Backend: netplan claims the NIC, or nothing does and netplan is installed
// (it is the front end networkd is configured through on such guests).
func (n *Netplan) IsManaging(d Detection) (bool, string) {
	switch {
	case d.Claimed(NameNetplan):
		return true, "netplan_manages=claim"
	case d.Unclaimed() && d.NetplanInstalled:
		return true, "netplan_manages=installed_unclaimed"
	}
	return false, ""
}

// netplanOwn is the shape of kvmnetv1's own file, for merging definitions of several NICs.
type netplanOwn struct {
	Network struct {
		Ethernets map[string]struct {
			Match struct {
				MACAddress string `yaml:"macaddress"`
			} `yaml:"match"`
		} `yaml:"ethernets"`
	} `yaml:"network"`
}

// Plan implements Backend.
func (n *Netplan) Plan(t Target) (*Plan, error) {
	p := &Plan{Stack: n.Stack(), Backend: NameNetplan, NIC: t.NIC}
	cfg, err := readNetplan(n.root)
	if err != nil {
		// A user file netplan cannot parse would make `netplan generate` fail too: say so now.
		return nil, fmt.Errorf("netplan configuration is unreadable: %w; fix or remove that file first", err)
	}
	// Keep the definitions of kvmnet's file for other NICs that still exist.
	macs := []string{strings.ToLower(t.NIC.MAC)}
	if b, err := t.read(n.root, NetplanFile); err == nil {
		var own netplanOwn
		if yaml.Unmarshal(b, &own) == nil {
			for _, e := range own.Network.Ethernets {
				m := strings.ToLower(e.Match.MACAddress)
				if m != "" && !slices.Contains(macs, m) && slices.ContainsFunc(t.All, func(x NIC) bool { return strings.EqualFold(x.MAC, m) }) {
					macs = append(macs, m)
				}
			}
		}
	}
	want := map[string]string{strings.ToLower(t.NIC.MAC): t.IPv6}
	prev := t.ipv6Of
	for _, m := range macs[1:] {
		want[m] = prev(n.root, m)
	}
	p.Files = append(p.Files, FileChange{Path: NetplanFile, Body: RenderNetplan(t.All, want), Mode: 0o600,
		Why: fmt.Sprintf("netplan definition kvmnet-%s: match macaddress %s, dhcp4 (ipv6 %s)", t.NIC.Name, t.NIC.MAC, ipv6Word(t.IPv6))})
	p.Evidence = append(p.Evidence, "stack=netplan", "netplan_file="+NetplanFile, "netplan_id=kvmnet-"+t.NIC.Name)

	// User definitions bound to interfaces the guest does not have.
	stale := map[string][]string{} // file → ids
	for _, id := range sortedKeys(cfg.entries) {
		e := cfg.entries[id]
		if e.file == NetplanFile {
			continue
		}
		superseded := !cfg.boundToMissing(e, []NIC{t.NIC})
		if !superseded && !cfg.boundToMissing(e, t.All) {
			continue
		}
		if superseded {
			// Two definitions for one NIC render two networkd files; the user's would win by name.
			p.Evidence = append(p.Evidence, "netplan_superseded="+quote(e.file+":"+id))
		}
		if !strings.HasPrefix(e.file, NetplanDir+"/") {
			p.Notes = append(p.Notes, fmt.Sprintf("netplan definition %s in %s names an interface this guest does not have; it is outside %s and left alone", id, e.file, NetplanDir))
			continue
		}
		stale[e.file] = append(stale[e.file], id)
	}
	for _, f := range sortedKeys(stale) {
		ids := stale[f]
		if _, done := t.Pending[f]; done {
			continue // neutralised by an earlier action of this request, against the same NICs
		}
		b, err := t.read(n.root, f)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", f, err)
		}
		body, err := NeutraliseNetplan(b, ids, t.All)
		if err != nil {
			return nil, fmt.Errorf("neutralise %s: %w", f, err)
		}
		p.Files = append(p.Files, FileChange{Path: f, Body: body, Neutralises: strings.Join(ids, ","),
			Why: fmt.Sprintf("managed copy without definition(s) %s: bound to interfaces this guest does not have, or replaced by kvmnet's (original backed up, restored on rollback)", strings.Join(ids, ","))})
		p.Evidence = append(p.Evidence, "netplan_neutralised="+quote(f+":"+strings.Join(ids, ",")))
	}
	p.Apply = []Command{{Argv: []string{"netplan", "generate"}}, {Argv: []string{"netplan", "apply"}}}
	p.Redo = []Command{{Argv: []string{"netplan", "generate"}, Tolerate: true}, {Argv: []string{"netplan", "apply"}, Tolerate: true}}
	return p, nil
}

// Apply implements Backend: `netplan generate` first, so a configuration netplan rejects fails with
// netplan's own message before anything is applied, then `netplan apply`.
func (n *Netplan) Apply(ctx context.Context, r Runner, p *Plan) ([]string, error) {
	ev, err := runAll(ctx, r, p.Apply)
	if err != nil {
		return ev, fmt.Errorf("netplan: %w", err)
	}
	return ev, nil
}

// Rollback implements Backend: after the files are restored, netplan generates and applies the
// user's configuration again.
func (n *Netplan) Rollback(ctx context.Context, r Runner, p *Plan, before bool) ([]string, error) {
	if before {
		return nil, nil
	}
	return runAll(ctx, r, p.Redo)
}

// boundToMissing reports whether an entry selects none of the guest's NICs.
func (c netplanConfig) boundToMissing(e *netplanEntry, all []NIC) bool {
	one := netplanConfig{entries: map[string]*netplanEntry{e.id: e}}
	for _, n := range all {
		if one.match(n.Name, n.MAC, "") != nil {
			return false
		}
	}
	return true
}

// RenderNetplan renders kvmnet's netplan file: one definition per MAC in want (value: its IPv6
// method), named kvmnet-<ifname>, matched by macaddress, dhcp4. IPv6 "disabled" means no router
// advertisements and no IPv6 link-local address (link-local: [] rather than [ipv4], which would
// also turn on IPv4 link-local addressing); "ignore" keeps link-local only; "auto" accepts RAs.
func RenderNetplan(all []NIC, want map[string]string) []byte {
	var b bytes.Buffer
	b.WriteString("# DHCP for the guest's NICs, matched by MAC so a renamed interface keeps working.\n")
	b.WriteString("network:\n  version: 2\n  ethernets:\n")
	for _, mac := range sortedKeys(want) {
		name := macFileName(mac)
		for _, n := range all {
			if strings.EqualFold(n.MAC, mac) {
				name = n.Name
			}
		}
		fmt.Fprintf(&b, "    kvmnet-%s:\n      match:\n        macaddress: %q\n      dhcp4: true\n", name, mac)
		switch want[mac] {
		case "disabled":
			b.WriteString("      dhcp6: false\n      accept-ra: false\n      link-local: []\n")
		case "ignore":
			b.WriteString("      dhcp6: false\n      accept-ra: false\n")
		case "auto":
			b.WriteString("      accept-ra: true\n")
		}
	}
	return b.Bytes()
}

// NeutraliseNetplan returns a copy of a user's netplan file without the ethernets definitions ids,
// keeping everything else (comments included, as far as YAML round-trips them), with a comment
// saying what was removed and why. An ethernets map left empty is dropped.
func NeutraliseNetplan(b []byte, ids []string, all []NIC) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("not a YAML mapping")
	}
	network := mapValue(doc.Content[0], "network")
	if network == nil || network.Kind != yaml.MappingNode {
		return nil, errors.New("no network mapping")
	}
	eth := mapValue(network, "ethernets")
	if eth == nil || eth.Kind != yaml.MappingNode {
		return nil, errors.New("no ethernets mapping")
	}
	removed := 0
	for i := 0; i+1 < len(eth.Content); {
		if slices.Contains(ids, eth.Content[i].Value) {
			eth.Content = slices.Delete(eth.Content, i, i+2)
			removed++
			continue
		}
		i += 2
	}
	if removed != len(ids) {
		return nil, fmt.Errorf("definitions %s not all found", strings.Join(ids, ","))
	}
	if len(eth.Content) == 0 {
		deleteKey(network, "ethernets")
	}
	var names []string
	for _, n := range all {
		names = append(names, n.Name)
	}
	var out bytes.Buffer
	fmt.Fprintf(&out, "# kvmnet removed ethernets %s: bound to interfaces this guest does not have, or replaced by kvmnet's %s (interfaces: %s).\n", strings.Join(ids, ", "), NetplanFile, strings.Join(names, ", "))
	out.WriteString("# The original is backed up under /var/lib/kvmnet/backup and comes back on rollback or restore.\n")
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

func mapValue(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func deleteKey(m *yaml.Node, key string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content = slices.Delete(m.Content, i, i+2)
			return
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func ipv6Word(m string) string {
	if m == "" {
		return "default"
	}
	return m
}

// read returns a file as a plan sees it: planned content from earlier actions of the same request
// (Target.Pending), else the file under root.
func (t Target) read(root, guest string) ([]byte, error) {
	if b, ok := t.Pending[guest]; ok {
		if b == nil {
			return nil, os.ErrNotExist
		}
		return b, nil
	}
	return os.ReadFile(filepath.Join(root, guest))
}

// ipv6Of returns the IPv6 method kvmnet's netplan file gives mac today ("" when none), so adding a
// second NIC keeps the first one's.
func (t Target) ipv6Of(root, mac string) string {
	b, err := t.read(root, NetplanFile)
	if err != nil {
		return ""
	}
	var doc struct {
		Network struct {
			Ethernets map[string]struct {
				Match struct {
					MACAddress string `yaml:"macaddress"`
				} `yaml:"match"`
				AcceptRA  *bool     `yaml:"accept-ra"`
				LinkLocal *[]string `yaml:"link-local"`
			} `yaml:"ethernets"`
		} `yaml:"network"`
	}
	if yaml.Unmarshal(b, &doc) != nil {
		return ""
	}
	for _, e := range doc.Network.Ethernets {
		if !strings.EqualFold(e.Match.MACAddress, mac) {
			continue
		}
		switch {
		case e.LinkLocal != nil && len(*e.LinkLocal) == 0:
			return "disabled"
		case e.AcceptRA != nil && !*e.AcceptRA:
			return "ignore"
		case e.AcceptRA != nil:
			return "auto"
		}
	}
	return ""
}
