package netstack

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"

	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// IfupdownDir is the directory kvmnet's stanza files live in.
const IfupdownDir = "/etc/network/interfaces.d"

// IfupdownSource is the line /etc/network/interfaces needs to read IfupdownDir (Debian's default
// file has it; hand-written ones may not).
const IfupdownSource = "source /etc/network/interfaces.d/*"

// IfupdownFile returns kvmnet's stanza file for an interface name (ifupdown has no MAC match).
func IfupdownFile(ifname string) string { return IfupdownDir + "/kvmnet-" + ifname }

// Ifupdown is the ifupdown backend: it writes IfupdownFile with allow-hotplug + iface inet dhcp,
// makes /etc/network/interfaces source IfupdownDir when it does not, neutralises stanzas for
// interfaces the guest does not have, and brings the NIC up through ifup@<ifname>.service (ifup
// runs dhclient, which needs AF_PACKET and /var/lib/dhcp: outside the agent's sandbox), with the
// DHCP client's output from that unit's journal as evidence.
type Ifupdown struct {
	root string
}

// NewIfupdown returns the ifupdown backend reading the guest's files under root.
func NewIfupdown(root string) *Ifupdown { return &Ifupdown{root: root} }

// Name implements Backend.
func (n *Ifupdown) Name() string { return NameIfupdown }

// Stack implements Backend.
func (n *Ifupdown) Stack() kvmnetv1.NetworkStack { return kvmnetv1.NetworkStack_NETWORK_STACK_IFUPDOWN }

// IsManaging implements Backend: a stanza names the NIC, or nothing claims it and ifupdown is the
// only file-based stack installed.
func (n *Ifupdown) IsManaging(d Detection) (bool, string) {
	switch {
	case d.Claimed(NameIfupdown):
		return true, "ifupdown_manages=claim"
	case d.Unclaimed() && d.IfupdownInstalled && !d.NetplanInstalled && !d.NetworkdRunning:
		return true, "ifupdown_manages=installed_unclaimed"
	}
	return false, ""
}

// Plan implements Backend.
func (n *Ifupdown) Plan(t Target) (*Plan, error) {
	own := IfupdownFile(t.NIC.Name)
	if !sourceDirName.MatchString("kvmnet-" + t.NIC.Name) {
		return nil, fmt.Errorf("interface name %q cannot be a file name ifupdown reads from %s", t.NIC.Name, IfupdownDir)
	}
	p := &Plan{Stack: n.Stack(), Backend: NameIfupdown, NIC: t.NIC}
	cfg, err := readIfupdown(n.root)
	if err != nil {
		return nil, fmt.Errorf("ifupdown configuration is unreadable: %w", err)
	}
	p.Files = append(p.Files, FileChange{Path: own, Body: RenderIfupdown(t.NIC), Mode: 0o644,
		Why: fmt.Sprintf("allow-hotplug %s + iface %s inet dhcp", t.NIC.Name, t.NIC.Name)})
	p.Evidence = append(p.Evidence, "stack=ifupdown", "ifupdown_file="+own, "ifupdown_stanza="+quote("iface "+t.NIC.Name+" inet dhcp"))
	if t.IPv6 != "" {
		p.Notes = append(p.Notes, "ifupdown: IPv6 "+t.IPv6+" is left to the kernel's sysctls (set_ipv6); the stanza is IPv4 only")
	}

	existing := existingNames(t.All)
	edits := map[string][]string{} // file → stale names
	stale := cfg.stale(existing)
	if st, ok := cfg.stanzas[t.NIC.Name]; ok && st.file != own {
		// The user's own stanza for this NIC (static in the wrong subnet, manual): kvmnet's
		// replaces it, since two iface blocks for one name make ifup fail.
		stale = append(stale, t.NIC.Name)
		p.Evidence = append(p.Evidence, "ifupdown_superseded="+quote(st.file+":iface "+t.NIC.Name+" "+strings.Join(st.families, ",")))
	}
	for _, name := range stale {
		f := cfg.stanzas[name].file
		if strings.HasPrefix(f, IfupdownDir+"/kvmnet-") {
			continue
		}
		edits[f] = append(edits[f], name)
	}
	addSource := !cfg.includes(own)
	if addSource {
		if _, ok := edits[ifupdownInterfaces]; !ok {
			edits[ifupdownInterfaces] = nil
		}
	}
	for _, f := range sortedKeys(edits) {
		if _, done := t.Pending[f]; done {
			continue
		}
		b, err := t.read(n.root, f)
		if err != nil && f != ifupdownInterfaces {
			return nil, fmt.Errorf("read %s: %w", f, err)
		}
		names := edits[f]
		src := addSource && f == ifupdownInterfaces
		body := NeutraliseIfupdown(b, names, src, t.All)
		var why []string
		if len(names) > 0 {
			why = append(why, "managed copy with the stanza(s) for "+strings.Join(names, ",")+" commented out (interfaces this guest does not have, or replaced by kvmnet's)")
			p.Evidence = append(p.Evidence, "ifupdown_neutralised="+quote(f+":"+strings.Join(names, ",")))
		}
		if src {
			why = append(why, "adds `"+IfupdownSource+"` so ifupdown reads "+own)
			p.Evidence = append(p.Evidence, "ifupdown_source_added="+ifupdownInterfaces)
		}
		p.Files = append(p.Files, FileChange{Path: f, Body: body, Neutralises: strings.Join(names, ","),
			Why: strings.Join(why, "; ") + " (original backed up, restored on rollback)"})
	}
	unit := "ifup@" + t.NIC.Name + ".service"
	p.Apply = []Command{{Argv: []string{"systemctl", "restart", unit}}}
	p.Undo = []Command{{Argv: []string{"systemctl", "stop", unit}, Tolerate: true}}
	return p, nil
}

// Apply implements Backend: ifup@<ifname> runs `ifup --allow=hotplug <ifname>` (and dhclient) as
// its own unit; its journal is the DHCP client's output, evidence whether it worked or not.
func (n *Ifupdown) Apply(ctx context.Context, r Runner, p *Plan) ([]string, error) {
	ev, err := runAll(ctx, r, p.Apply)
	log, _ := runAll(ctx, r, []Command{{Argv: []string{"journalctl", "--no-pager", "-o", "cat", "-n", "20", "-u", "ifup@" + p.NIC.Name + ".service"}, Tolerate: true}})
	ev = append(ev, log...)
	if err != nil {
		return ev, fmt.Errorf("ifupdown: %w (%s)", err, strings.Join(log, " "))
	}
	return ev, nil
}

// Rollback implements Backend: before the files are restored, ifdown (stopping ifup@<ifname>)
// releases the lease while kvmnet's stanza still exists.
func (n *Ifupdown) Rollback(ctx context.Context, r Runner, p *Plan, before bool) ([]string, error) {
	if !before {
		return nil, nil
	}
	return runAll(ctx, r, p.Undo)
}

// RenderIfupdown renders kvmnet's stanza file for nic.
func RenderIfupdown(nic NIC) []byte {
	return fmt.Appendf(nil, "# DHCP for %s (%s); allow-hotplug: udev brings it up at boot and on hot-plug.\nallow-hotplug %s\niface %s inet dhcp\n",
		nic.Name, strings.ToLower(nic.MAC), nic.Name, nic.Name)
}

// ifupdownKeyword starts a new stanza (ends the option lines of an iface block).
func ifupdownKeyword(w string) bool {
	switch w {
	case "iface", "mapping", "auto", "source", "source-directory", "no-auto-down", "no-scripts", "rename":
		return true
	}
	return strings.HasPrefix(w, "allow-")
}

// NeutraliseIfupdown returns a managed copy of an ifupdown file with the iface blocks of names
// commented out and names dropped from auto/allow-* lines (a line left empty is commented out),
// plus IfupdownSource appended when addSource. Comments and other stanzas stay as they were.
func NeutraliseIfupdown(b []byte, names []string, addSource bool, all []NIC) []byte {
	var out bytes.Buffer
	if len(names) > 0 {
		var have []string
		for _, n := range all {
			have = append(have, n.Name)
		}
		fmt.Fprintf(&out, "# kvmnet commented out the stanza(s) for %s: no such interface, or kvmnet's stanza replaces it (interfaces: %s).\n", strings.Join(names, ", "), strings.Join(have, ", "))
		out.WriteString("# The original is backed up under /var/lib/kvmnet/backup and comes back on rollback or restore.\n")
	}
	inBlock := false
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		switch {
		case len(f) == 0 || strings.HasPrefix(f[0], "#"):
			out.WriteString(line)
			continue
		case ifupdownKeyword(f[0]):
			inBlock = false
		}
		switch {
		case f[0] == "iface" && len(f) >= 2 && slices.Contains(names, f[1]):
			inBlock = true
			out.WriteString("# " + line)
		case inBlock:
			out.WriteString("# " + line)
		case (f[0] == "auto" || strings.HasPrefix(f[0], "allow-")) && slices.ContainsFunc(f[1:], func(s string) bool { return slices.Contains(names, s) }):
			keep := slices.DeleteFunc(slices.Clone(f[1:]), func(s string) bool { return slices.Contains(names, s) })
			out.WriteString("# " + line)
			if len(keep) > 0 {
				out.WriteString(f[0] + " " + strings.Join(keep, " ") + "\n")
			}
		default:
			out.WriteString(line)
		}
	}
	if out.Len() > 0 && !bytes.HasSuffix(out.Bytes(), []byte("\n")) {
		out.WriteString("\n")
	}
	if addSource {
		out.WriteString("\n# kvmnet: read the stanza files in interfaces.d (kvmnet's DHCP stanza lives there).\n" + IfupdownSource + "\n")
	}
	return out.Bytes()
}
