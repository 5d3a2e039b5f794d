package netstack

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"

	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// NetworkdDir is where kvmnet's .network files and neutralised user files live.
const NetworkdDir = "/etc/systemd/network"

// NetworkdFile returns kvmnet's .network file for a MAC. 10- sorts before the files users and
// images ship (20-wired.network, 50-dhcp.network...): networkd applies the first file that
// matches, so this one wins for its NIC and no other.
func NetworkdFile(mac string) string {
	return NetworkdDir + "/10-kvmnet-" + macFileName(mac) + ".network"
}

// Networkd is the systemd-networkd backend for guests without netplan: it writes NetworkdFile,
// neutralises user .network files that select only interfaces the guest does not have, and runs
// `networkctl reload` + `networkctl reconfigure <ifname>`.
type Networkd struct {
	root string
}

// NewNetworkd returns the networkd backend reading the guest's files under root.
func NewNetworkd(root string) *Networkd { return &Networkd{root: root} }

// Name implements Backend.
func (n *Networkd) Name() string { return NameNetworkd }

// Stack implements Backend.
func (n *Networkd) Stack() kvmnetv1.NetworkStack { return kvmnetv1.NetworkStack_NETWORK_STACK_NETWORKD }

// IsManaging implements Backend: a .network file of the user selects the NIC, or nothing claims it,
// netplan is absent and networkd runs.
func (n *Networkd) IsManaging(d Detection) (bool, string) {
	switch {
	case d.Claimed(NameNetworkd):
		return true, "networkd_manages=claim"
	case d.Unclaimed() && !d.NetplanInstalled && d.NetworkdRunning:
		return true, "networkd_manages=running_unclaimed"
	}
	return false, ""
}

// Plan implements Backend.
func (n *Networkd) Plan(t Target) (*Plan, error) {
	own := NetworkdFile(t.NIC.MAC)
	p := &Plan{Stack: n.Stack(), Backend: NameNetworkd, NIC: t.NIC}
	p.Files = append(p.Files, FileChange{Path: own, Body: RenderNetworkd(t.NIC, t.IPv6), Mode: 0o644,
		Why: fmt.Sprintf("[Match] MACAddress=%s, DHCP=ipv4 (ipv6 %s)", t.NIC.MAC, ipv6Word(t.IPv6))})
	p.Evidence = append(p.Evidence, "stack=networkd", "networkd_file="+own)
	cfg, err := readNetworkd(n.root)
	if err != nil {
		return nil, fmt.Errorf("networkd configuration is unreadable: %w", err)
	}
	for _, f := range cfg.files {
		if !strings.HasPrefix(f.guest, NetworkdDir+"/") || strings.HasPrefix(filepath.Base(f.guest), "10-kvmnet-") || !boundToNames(f.match) {
			continue
		}
		if _, done := t.Pending[f.guest]; done {
			continue
		}
		missing := true
		for _, nic := range t.All {
			if matchSection(f.match, nic.Name, nic.MAC, "") {
				missing = false
			}
		}
		if !missing {
			continue
		}
		b, err := t.read(n.root, f.guest)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", f.guest, err)
		}
		p.Files = append(p.Files, FileChange{Path: f.guest, Body: NeutraliseNetworkd(b, t.All), Neutralises: "[Match]",
			Why: "managed copy with only its [Match] section: it selects interfaces this guest does not have (original backed up, restored on rollback)"})
		p.Evidence = append(p.Evidence, "networkd_neutralised="+f.guest)
	}
	p.Apply = []Command{{Argv: []string{"networkctl", "reload"}}, {Argv: []string{"networkctl", "reconfigure", t.NIC.Name}}}
	p.Redo = []Command{{Argv: []string{"networkctl", "reload"}, Tolerate: true}, {Argv: []string{"networkctl", "reconfigure", t.NIC.Name}, Tolerate: true}}
	return p, nil
}

// boundToNames reports whether a [Match] section selects by name or MAC (a file matching every
// ethernet, or by driver, is not "bound to a missing interface").
func boundToNames(m map[string][]string) bool {
	for _, k := range []string{"Name", "OriginalName", "MACAddress", "PermanentMACAddress"} {
		if len(m[k]) > 0 {
			return true
		}
	}
	return false
}

// Apply implements Backend.
func (n *Networkd) Apply(ctx context.Context, r Runner, p *Plan) ([]string, error) {
	ev, err := runAll(ctx, r, p.Apply)
	if err != nil {
		return ev, fmt.Errorf("networkd: %w", err)
	}
	return ev, nil
}

// Rollback implements Backend: once the files are restored networkd reloads them and reconfigures
// the NIC.
func (n *Networkd) Rollback(ctx context.Context, r Runner, p *Plan, before bool) ([]string, error) {
	if before {
		return nil, nil
	}
	return runAll(ctx, r, p.Redo)
}

// RenderNetworkd renders kvmnet's .network file for nic. IPv6 "disabled": no link-local address,
// no router advertisements; "ignore": no RAs; "auto": RAs accepted.
func RenderNetworkd(nic NIC, ipv6 string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# DHCP for %s, matched by MAC so a renamed interface keeps working.\n", nic.Name)
	fmt.Fprintf(&b, "[Match]\nMACAddress=%s\n\n[Network]\nDHCP=ipv4\n", strings.ToLower(nic.MAC))
	switch ipv6 {
	case "disabled":
		b.WriteString("LinkLocalAddressing=no\nIPv6AcceptRA=no\n")
	case "ignore":
		b.WriteString("IPv6AcceptRA=no\n")
	case "auto":
		b.WriteString("IPv6AcceptRA=yes\n")
	}
	return b.Bytes()
}

// NeutraliseNetworkd returns a managed copy of a user's .network file that keeps its [Match]
// section (which selects no interface of this guest) and comments out everything else. The
// [Match] section stays because a .network file without one would match every interface.
func NeutraliseNetworkd(b []byte, all []NIC) []byte {
	var names []string
	for _, n := range all {
		names = append(names, n.Name)
	}
	var out bytes.Buffer
	fmt.Fprintf(&out, "# kvmnet neutralised this file: its [Match] selects no interface of this guest (it has: %s).\n", strings.Join(names, ", "))
	out.WriteString("# The original is backed up under /var/lib/kvmnet/backup and comes back on rollback or restore.\n")
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "[") && strings.HasSuffix(t, "]") {
			section = t[1 : len(t)-1]
		}
		if section == "Match" || t == "" {
			out.WriteString(line + "\n")
			continue
		}
		out.WriteString("# " + line + "\n")
	}
	return out.Bytes()
}
