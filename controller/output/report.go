package output

import (
	"fmt"
	"io"
	"strings"

	"github.com/kvmnet/kvmnet/controller/diagnose"
)

// statusRow is one line of the `guests status` table: a guest NIC with its guest-level columns.
type statusRow struct {
	guest diagnose.GuestReport
	nic   diagnose.NICReport
	// agent is "transport/ok", "transport/unreachable" or "none".
	agent string
	// codes of the findings that concern this NIC (and, on the first row, the guest as a whole).
	codes []diagnose.Code
	// worst severity among them ("" when none).
	worst diagnose.Severity
}

// statusRows flattens the report into one row per guest NIC (one row for a guest without NICs).
func statusRows(r diagnose.Report) []statusRow {
	var out []statusRow
	for _, g := range r.Guests {
		agent := g.AgentColumn()
		nics := g.NICs
		if len(nics) == 0 {
			nics = []diagnose.NICReport{{}}
		}
		for i, n := range nics {
			row := statusRow{guest: g, nic: n, agent: agent}
			for _, f := range g.Findings {
				if (f.MAC != "" && f.MAC == n.MAC) || (f.MAC == "" && i == 0) {
					row.codes = append(row.codes, f.Code)
					row.worst = worse(row.worst, f.Severity)
				}
			}
			if i == 0 {
				for _, c := range g.HostCauses {
					row.codes = append(row.codes, c)
					row.worst = worse(row.worst, diagnose.SeverityError)
				}
			}
			out = append(out, row)
		}
	}
	return out
}

func rank(s diagnose.Severity) int {
	switch s {
	case diagnose.SeverityError:
		return 3
	case diagnose.SeverityWarning:
		return 2
	case diagnose.SeverityInfo:
		return 1
	}
	return 0
}

func worse(a, b diagnose.Severity) diagnose.Severity {
	if rank(b) > rank(a) {
		return b
	}
	return a
}

// StatusWidth is the width the default `guests status` table keeps to: the FINDINGS column gets
// what the other columns leave (the findings are listed in full under the table).
const StatusWidth = 120

// WriteStatus renders the `guests status` table, the findings with their fixes, and a summary line.
// The default table has one line per guest NIC with DOMAIN, NIC, NETWORK, GUEST-IF, IPV4, LEASE,
// AGENT and FINDINGS and fits StatusWidth columns for names of usual length; wide adds the domain
// state, the bridge, the tap, the guest's network stack, the agent's transport, IPv6, apt's IPv4 setting and the checks, and
// lists every code.
func WriteStatus(w io.Writer, r diagnose.Report, pal Palette, wide bool) error {
	headers := []string{"DOMAIN", "NIC", "NETWORK", "GUEST-IF", "IPV4", "LEASE", "AGENT", "FINDINGS"}
	if wide {
		headers = []string{"DOMAIN", "STATE", "MAC", "NETWORK", "VNET", "GUEST-IF", "STACK", "GUEST-IPV4", "LEASE", "AGENT", "IPV6", "APT-IPV4", "CHECKS", "FINDINGS"}
	}
	var rows [][]string
	var codes [][]string
	var worst []diagnose.Severity
	nics := 0
	for _, row := range statusRows(r) {
		n := row.nic
		if n.MAC != "" {
			nics++
		}
		lease := n.LeaseIPv4
		if n.LeaseSource == "neighbour" {
			lease += " (arp)"
		}
		cs := []string{"ok"}
		if len(row.codes) > 0 {
			cs = cs[:0]
			for _, c := range row.codes {
				cs = append(cs, Sanitize(string(c)))
			}
		}
		if wide {
			network := n.Network
			if network == "" {
				network = n.Bridge
			} else if n.Bridge != "" {
				network += "(" + n.Bridge + ")"
			}
			rows = append(rows, []string{row.guest.Name, row.guest.State, Dash(string(n.MAC)), Dash(network), Dash(n.Vnet), Dash(n.GuestIfname), Dash(n.Stack),
				Dash(strings.Join(n.GuestIPv4, ",")), Dash(lease), row.agent, Dash(n.IPv6), Dash(n.AptIPv4), Dash(n.Checks), strings.Join(cs, ",")})
		} else {
			network := n.Network
			if network == "" {
				network = n.Bridge
			}
			agent := row.agent
			if i := strings.LastIndex(agent, "/"); i >= 0 {
				agent = agent[i+1:] // the transport is in -o wide
			}
			rows = append(rows, []string{row.guest.Name, Dash(string(n.MAC)), Dash(network), Dash(n.GuestIfname),
				Dash(strings.Join(n.GuestIPv4, ",")), Dash(lease), agent, ""})
		}
		codes = append(codes, cs)
		worst = append(worst, row.worst)
	}
	if !wide {
		// Every column but the last is as wide as its widest cell plus two spaces.
		used := 0
		for c := 0; c < len(headers)-1; c++ {
			width := len([]rune(headers[c]))
			for _, row := range rows {
				width = max(width, len([]rune(Sanitize(row[c]))))
			}
			used += width + 2
		}
		for i := range rows {
			rows[i][len(headers)-1] = fitCodes(codes[i], StatusWidth-used)
		}
	}
	var b strings.Builder
	last := len(headers) - 1
	writeTable(&b, pal, headers, rows, func(row, col int) Style {
		if col != last {
			return StyleNone
		}
		return SeverityStyle(worst[row])
	})
	var all []diagnose.Finding
	for _, g := range r.Guests {
		all = append(all, g.Findings...)
	}
	writeFindings(&b, pal, all)
	health := map[diagnose.Health]int{}
	causes := map[diagnose.Code]bool{}
	for _, g := range r.Guests {
		switch {
		case !g.Healthy:
			health[diagnose.HealthUnhealthy]++
		case g.Health == diagnose.HealthUnknown:
			health[diagnose.HealthUnknown]++
		default:
			health[diagnose.HealthHealthy]++
		}
		for _, c := range g.HostCauses {
			causes[c] = true
		}
	}
	fmt.Fprintf(&b, "%s, %s: %d healthy, %d unhealthy", Plural(len(r.Guests), "guest", "guests"), Plural(nics, "NIC", "NICs"),
		health[diagnose.HealthHealthy], health[diagnose.HealthUnhealthy])
	if n := health[diagnose.HealthUnknown]; n > 0 {
		fmt.Fprintf(&b, ", %d unknown (nothing seen inside)", n)
	}
	fmt.Fprintf(&b, "; %s", countLine(all))
	if len(causes) > 0 {
		fmt.Fprintf(&b, "; %d host-side cause(s): see kvmnetctl host check", len(causes))
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func countLine(fs []diagnose.Finding) string {
	c := map[diagnose.Severity]int{}
	for _, f := range fs {
		c[f.Severity]++
	}
	return fmt.Sprintf("findings: %d error, %d warning, %d info", c[diagnose.SeverityError], c[diagnose.SeverityWarning], c[diagnose.SeverityInfo])
}

func writeFindings(b *strings.Builder, pal Palette, fs []diagnose.Finding) {
	if len(fs) == 0 {
		return
	}
	b.WriteString("\n")
	for _, f := range fs {
		fmt.Fprintf(b, "%s %s [%s] %s\n    fix: %s\n", pal.Paint(SeverityStyle(f.Severity), Sanitize(strings.ToUpper(string(f.Severity)))),
			Sanitize(string(f.Code)), Sanitize(f.Subject), Sanitize(f.Summary), Sanitize(f.Fix))
	}
	b.WriteString("\n")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// WriteHostCheck renders `host check`: host facts, networks, bridges, firewall verdicts, findings
// and a summary line.
func WriteHostCheck(w io.Writer, r diagnose.Report, pal Palette) error {
	var b strings.Builder
	h := r.Host
	fwd := "unknown"
	if h.IPForward != nil {
		fwd = "0"
		if *h.IPForward {
			fwd = "1"
		}
	}
	fmt.Fprintf(&b, "libvirt: %s\n", Dash(r.URI))
	fmt.Fprintf(&b, "host: net.ipv4.ip_forward=%s uplink=%s ipv6_default_route=%s\n", fwd, Dash(h.Uplink), yesNo(h.IPv6DefaultRoute))
	f := h.Firewall
	if f.Read {
		fmt.Fprintf(&b, "firewall: backend=%s libvirt_rules=%s forward_policy=%s docker=%s ufw=%s firewalld=%s\n",
			Dash(f.Backend), Dash(f.LibvirtRules), Dash(f.ForwardPolicy), yesNo(f.Docker), Dash(f.UFW), Dash(f.Firewalld))
	} else {
		b.WriteString("firewall: not read\n")
	}
	b.WriteString("\n")
	var rows [][]string
	for _, n := range r.Networks {
		leases := "?"
		if n.Leases >= 0 {
			leases = fmt.Sprint(n.Leases)
		}
		egress := n.Egress
		if n.EgressRule != "" {
			egress += " (" + n.EgressRule + ")"
		}
		rows = append(rows, []string{n.Name, yesNo(n.Active), yesNo(n.Autostart), n.Forward, Dash(n.Bridge), n.BridgeState,
			Dash(n.Subnet), yesNo(n.DHCP), leases, n.Dnsmasq, n.Masquerade, egress})
	}
	writeTable(&b, pal, []string{"NETWORK", "ACTIVE", "AUTOSTART", "FORWARD", "BRIDGE", "BRIDGE-STATE", "SUBNET", "DHCP", "LEASES",
		"DNSMASQ", "MASQUERADE", "EGRESS"}, rows, nil)
	// Networks without NAT depend on a route the host cannot see: say so under the table.
	for _, n := range r.Networks {
		if n.ReturnRoute != "" {
			fmt.Fprintf(&b, "return route of %s (%s): %s\n", n.Name, n.Forward, n.ReturnRoute)
		}
	}
	if len(h.Bridges) > 0 {
		b.WriteString("\n")
		rows = nil
		for _, br := range h.Bridges {
			rows = append(rows, []string{br.Name, br.State, yesNo(br.STP), Dash(strings.Join(br.Addresses, ",")), Dash(strings.Join(br.Ports, ","))})
		}
		writeTable(&b, pal, []string{"BRIDGE", "STATE", "STP", "ADDRESSES", "PORTS"}, rows, nil)
	}
	fs := r.HostFindings()
	writeFindings(&b, pal, fs)
	if len(fs) == 0 {
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "%s: %s\n", Plural(len(r.Networks), "network", "networks"), countLine(fs))
	_, err := io.WriteString(w, b.String())
	return err
}

// fitCodes joins codes with commas within width runes: the codes that fit, then "+N" for the rest
// (at least the first code is named, cut with "…" if even it does not fit).
func fitCodes(codes []string, width int) string {
	all := strings.Join(codes, ",")
	if len([]rune(all)) <= width {
		return all
	}
	for n := len(codes) - 1; n >= 1; n-- {
		s := strings.Join(codes[:n], ",") + fmt.Sprintf(" +%d", len(codes)-n)
		if len([]rune(s)) <= width {
			return s
		}
	}
	more := ""
	if len(codes) > 1 {
		more = fmt.Sprintf(" +%d", len(codes)-1)
	}
	first := []rune(codes[0])
	keep := max(width-len([]rune(more))-1, 8)
	if keep < len(first) {
		return string(first[:keep]) + "…" + more
	}
	return string(first) + more
}
