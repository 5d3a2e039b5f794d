package diagnose

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Row is one line of the `guests status` table: a guest NIC with its guest-level columns.
type Row struct {
	// Domain name.
	Domain string
	// State of the domain.
	State string
	// NIC is the correlation row (zero value for a guest without NICs).
	NIC NICReport
	// Agent is "transport/ok", "transport/unreachable" or "none".
	Agent string
	// Codes of the findings that concern this NIC (and, on the first row, the guest as a whole).
	Codes []Code
	// Worst severity among them ("" when none).
	Worst Severity
	// Healthy is the guest's health.
	Healthy bool
}

// Rows flattens the report into one row per guest NIC (one row for a guest without NICs).
func (r Report) Rows() []Row {
	var out []Row
	for _, g := range r.Guests {
		agent := "none"
		if g.Agent.Transport != "none" && g.Agent.Transport != "" {
			agent = g.Agent.Transport + "/ok"
			if !g.Agent.Reachable {
				agent = g.Agent.Transport + "/unreachable"
			}
		}
		if !g.Agent.Reachable && g.Agent.QGA != nil && g.Agent.QGA.Answered {
			agent = AgentQGA
		}
		nics := g.NICs
		if len(nics) == 0 {
			nics = []NICReport{{}}
		}
		for i, n := range nics {
			row := Row{Domain: g.Name, State: g.State, NIC: n, Agent: agent, Healthy: g.Healthy}
			for _, f := range g.Findings {
				if (f.MAC != "" && f.MAC == n.MAC) || (f.MAC == "" && i == 0) {
					row.Codes = append(row.Codes, f.Code)
					row.Worst = worse(row.Worst, f.Severity)
				}
			}
			if i == 0 {
				for _, c := range g.HostCauses {
					row.Codes = append(row.Codes, c)
					row.Worst = worse(row.Worst, SeverityError)
				}
			}
			out = append(out, row)
		}
	}
	return out
}

func rank(s Severity) int {
	switch s {
	case SeverityError:
		return 3
	case SeverityWarning:
		return 2
	case SeverityInfo:
		return 1
	}
	return 0
}

func worse(a, b Severity) Severity {
	if rank(b) > rank(a) {
		return b
	}
	return a
}

const (
	ansiRed    = "\x1b[31m"
	ansiYellow = "\x1b[33m"
	ansiCyan   = "\x1b[36m"
	ansiGreen  = "\x1b[32m"
	ansiReset  = "\x1b[0m"
)

type painter bool

func (p painter) sev(s Severity, text string) string {
	if !p {
		return text
	}
	switch s {
	case SeverityError:
		return ansiRed + text + ansiReset
	case SeverityWarning:
		return ansiYellow + text + ansiReset
	case SeverityInfo:
		return ansiCyan + text + ansiReset
	}
	return ansiGreen + text + ansiReset
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return clean(s)
}

// clean makes text reported by a guest (profile names, interface names, errors) safe for a terminal:
// control characters (newlines, ESC sequences, C1 controls) are shown escaped, never interpreted.
func clean(s string) string {
	ok := true
	for _, r := range s {
		if r < 0x20 || (r >= 0x7f && r <= 0x9f) {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if r < 0x20 || (r >= 0x7f && r <= 0x9f) {
			fmt.Fprintf(&b, "\\x%02x", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// WriteStatus renders the `guests status` table: one line per guest NIC, the findings with their
// fixes, and a summary line. color adds ANSI colours (callers pass true only on a TTY).
func WriteStatus(w io.Writer, r Report, color bool) error {
	p := painter(color)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DOMAIN\tSTATE\tMAC\tNETWORK\tVNET\tGUEST-IF\tGUEST-IPV4\tLEASE\tAGENT\tIPV6\tAPT-IPV4\tCHECKS\tFINDINGS")
	nics := 0
	for _, row := range r.Rows() {
		n := row.NIC
		if n.MAC != "" {
			nics++
		}
		network := n.Network
		if network == "" {
			network = n.Bridge
		} else if n.Bridge != "" {
			network += "(" + n.Bridge + ")"
		}
		lease := n.LeaseIPv4
		if n.LeaseSource == "neighbour" {
			lease += " (arp)"
		}
		codes := "ok"
		if len(row.Codes) > 0 {
			var cs []string
			for _, c := range row.Codes {
				cs = append(cs, string(c))
			}
			codes = strings.Join(cs, ",")
		}
		// tabwriter counts escape bytes as width: colour only the last column.
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			clean(row.Domain), clean(row.State), dash(string(n.MAC)), dash(network), dash(n.Vnet), dash(n.GuestIfname),
			dash(strings.Join(n.GuestIPv4, ",")), dash(lease), row.Agent, dash(n.IPv6), dash(n.AptIPv4), dash(n.Checks),
			p.sev(row.Worst, clean(codes)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var all []Finding
	for _, g := range r.Guests {
		all = append(all, g.Findings...)
	}
	if err := writeFindings(w, p, all); err != nil {
		return err
	}
	healthy := 0
	causes := map[Code]bool{}
	for _, g := range r.Guests {
		if g.Healthy {
			healthy++
		}
		for _, c := range g.HostCauses {
			causes[c] = true
		}
	}
	line := fmt.Sprintf("%s, %s: %d healthy, %d unhealthy; %s", plural(len(r.Guests), "guest", "guests"), plural(nics, "NIC", "NICs"),
		healthy, len(r.Guests)-healthy, countLine(all))
	if len(causes) > 0 {
		line += fmt.Sprintf("; %d host-side cause(s): see kvmnetctl host check", len(causes))
	}
	_, err := fmt.Fprintln(w, line)
	return err
}

func countLine(fs []Finding) string {
	c := map[Severity]int{}
	for _, f := range fs {
		c[f.Severity]++
	}
	return fmt.Sprintf("findings: %d error, %d warning, %d info", c[SeverityError], c[SeverityWarning], c[SeverityInfo])
}

func writeFindings(w io.Writer, p painter, fs []Finding) error {
	if len(fs) == 0 {
		return nil
	}
	if _, err := fmt.Fprintln(w); err != nil {
		return err
	}
	for _, f := range fs {
		if _, err := fmt.Fprintf(w, "%s %s [%s] %s\n    fix: %s\n", p.sev(f.Severity, strings.ToUpper(string(f.Severity))),
			f.Code, clean(f.Subject), clean(f.Summary), clean(f.Fix)); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintln(w)
	return err
}

// WriteHostCheck renders `host check`: host facts, networks, bridges, firewall verdicts, findings
// and a summary line.
func WriteHostCheck(w io.Writer, r Report, color bool) error {
	p := painter(color)
	h := r.Host
	fwd := "unknown"
	if h.IPForward != nil {
		fwd = "0"
		if *h.IPForward {
			fwd = "1"
		}
	}
	fmt.Fprintf(w, "libvirt: %s\n", dash(r.URI))
	fmt.Fprintf(w, "host: net.ipv4.ip_forward=%s uplink=%s ipv6_default_route=%s\n", fwd, dash(h.Uplink), yesNo(h.IPv6DefaultRoute))
	f := h.Firewall
	if f.Read {
		fmt.Fprintf(w, "firewall: backend=%s libvirt_rules=%s forward_policy=%s docker=%s ufw=%s firewalld=%s\n",
			dash(f.Backend), dash(f.LibvirtRules), dash(f.ForwardPolicy), yesNo(f.Docker), dash(f.UFW), dash(f.Firewalld))
	} else {
		fmt.Fprintln(w, "firewall: not read")
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NETWORK\tACTIVE\tAUTOSTART\tFORWARD\tBRIDGE\tBRIDGE-STATE\tSUBNET\tDHCP\tLEASES\tDNSMASQ\tMASQUERADE\tEGRESS")
	for _, n := range r.Networks {
		leases := "?"
		if n.Leases >= 0 {
			leases = fmt.Sprint(n.Leases)
		}
		egress := n.Egress
		if n.EgressRule != "" {
			egress += " (" + n.EgressRule + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", clean(n.Name), yesNo(n.Active), yesNo(n.Autostart), n.Forward,
			dash(n.Bridge), n.BridgeState, dash(n.Subnet), yesNo(n.DHCP), leases, n.Dnsmasq, n.Masquerade, clean(egress))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(h.Bridges) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "BRIDGE\tSTATE\tSTP\tADDRESSES\tPORTS")
		for _, b := range h.Bridges {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", clean(b.Name), clean(b.State), yesNo(b.STP), dash(strings.Join(b.Addresses, ",")), dash(strings.Join(b.Ports, ",")))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	fs := r.HostFindings()
	if err := writeFindings(w, p, fs); err != nil {
		return err
	}
	if len(fs) == 0 {
		fmt.Fprintln(w)
	}
	_, err := fmt.Fprintf(w, "%s: %s\n", plural(len(r.Networks), "network", "networks"), countLine(fs))
	return err
}

// WriteJSON writes the report in the JSON contract: indented, without HTML escaping (rules contain
// "->" and "<dhcp>").
func WriteJSON(w io.Writer, r Report) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}
