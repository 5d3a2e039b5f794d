package exporter

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/kvmnet/kvmnet/controller/diagnose"
)

// RunbookBase is where alerts link their runbooks (docs/runbooks/<code>.md in the repository).
const RunbookBase = "https://github.com/kvmnet/kvmnet/blob/main/"

// Meta alerts are about the exporter itself, not a code; their runbooks are sections of
// docs/runbooks/README.md.
var metaAlerts = []struct{ name, expr, forDur, severity, summary, description, anchor string }{
	{"KvmnetExporterDown", "kvmnet_up == 0", "5m", "critical",
		"kvmnetctl exporter on {{ $labels.instance }} cannot read libvirt",
		"kvmnet_up is 0: libvirt could not be listed within the scrape's deadline, so no finding is exported for this host.",
		"kvmnetexporterdown"},
	{"KvmnetGuestTimedOut", "kvmnet_guest_timed_out == 1", "15m", "warning",
		"guest {{ $labels.domain }} on {{ $labels.instance }} does not answer in time",
		"The kvmnet agent of {{ $labels.domain }} (or its QEMU) did not answer within the exporter's per-guest timeout: the guest's own view is missing from every finding.",
		"kvmnetguesttimedout"},
}

// AlertName is the alert of an error-level code: Kvmnet + the code in CamelCase.
func AlertName(c diagnose.Code) string {
	var b strings.Builder
	b.WriteString("Kvmnet")
	for _, w := range strings.Split(string(c), "_") {
		if w == "" {
			continue
		}
		b.WriteString(strings.ToUpper(w[:1]) + w[1:])
	}
	return b.String()
}

// alertFor is how long a finding must stay before its alert fires: guests get longer (a booting
// guest has no lease or address for a while; a fix runs under a rollback timeout).
func alertFor(ci diagnose.CodeInfo) string {
	if ci.Scope == diagnose.ScopeGuest {
		return "10m"
	}
	return "5m"
}

// AlertCodes are the codes that get an alert: every code whose findings can be error-level.
func AlertCodes(cat []diagnose.CodeInfo) []diagnose.CodeInfo {
	var out []diagnose.CodeInfo
	for _, ci := range cat {
		if ci.Severity == diagnose.SeverityError {
			out = append(out, ci)
		}
	}
	return out
}

// templated turns a catalogue fix command template into one with the alert's labels.
func templated(cmd string) string {
	cmd = strings.ReplaceAll(cmd, "DOMAIN", "{{ $labels.domain }}")
	return strings.ReplaceAll(cmd, "MAC", "{{ $labels.mac }}")
}

func subjectTemplate(ci diagnose.CodeInfo) string {
	switch ci.Scope {
	case diagnose.ScopeNetwork:
		return "network {{ $labels.network }}"
	case diagnose.ScopeGuest:
		return "guest {{ $labels.domain }} {{ $labels.mac }}"
	}
	return "host"
}

// yq quotes s as a YAML double-quoted scalar.
func yq(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(s) + `"`
}

// RenderRules renders packaging/prometheus/kvmnet.rules.yml from the catalogue.
func RenderRules(cat []diagnose.CodeInfo) []byte {
	var b bytes.Buffer
	b.WriteString("# Generated from controller/diagnose's catalogue by controller/exporter (go test ./controller/exporter\n" +
		"# -run TestRulesAndRunbooks -update); do not edit. One alert per code whose findings can be\n" +
		"# error-level, each with its runbook; severity=\"error\" in the expression leaves findings the\n" +
		"# diagnosis graded down to warnings alone.\n")
	b.WriteString("groups:\n  - name: kvmnet-exporter\n    rules:\n")
	for _, m := range metaAlerts {
		fmt.Fprintf(&b, "      - alert: %s\n        expr: %s\n        for: %s\n        labels:\n          severity: %s\n", m.name, m.expr, m.forDur, m.severity)
		fmt.Fprintf(&b, "        annotations:\n          summary: %s\n          description: %s\n          runbook_url: %s\n",
			yq(m.summary), yq(m.description), yq(RunbookBase+"docs/runbooks/README.md#"+m.anchor))
	}
	b.WriteString("  - name: kvmnet-findings\n    rules:\n")
	for _, ci := range AlertCodes(cat) {
		sev := "warning"
		if ci.CausedOnHost() {
			sev = "critical" // every guest behind that host or network is affected
		}
		summary, desc := findingAnnotations(ci)
		fmt.Fprintf(&b, "      - alert: %s\n        expr: kvmnet_finding{code=%q,severity=\"error\"} == 1\n        for: %s\n", AlertName(ci.Code), string(ci.Code), alertFor(ci))
		fmt.Fprintf(&b, "        labels:\n          severity: %s\n          scope: %s\n", sev, ci.Scope)
		fmt.Fprintf(&b, "        annotations:\n          summary: %s\n          description: %s\n          runbook_url: %s\n",
			yq(summary), yq(desc), yq(RunbookBase+ci.Runbook))
	}
	return b.Bytes()
}

// findingAnnotations are the summary and description templates of a code's alert.
func findingAnnotations(ci diagnose.CodeInfo) (summary, desc string) {
	fix := "kvmnetctl guests status {{ $labels.domain }} shows the evidence; the finding's fix field says what to do by hand."
	if ci.Scope != diagnose.ScopeGuest {
		fix = "kvmnetctl host check shows the evidence; the finding's fix field says what to do by hand."
	}
	if ci.FixCommand != "" {
		fix = "Fix: " + templated(ci.FixCommand) + " (add --dry-run to see the plan first)."
	}
	return string(ci.Code) + " on {{ $labels.instance }} (" + subjectTemplate(ci) + ")", upperFirst(ci.Summary) + ". " + fix
}

// upperFirst capitalises a catalogue summary, unless it starts with a name that must keep its case
// (net.ipv4.ip_forward=0).
func upperFirst(s string) string {
	first, _, _ := strings.Cut(s, " ")
	if s == "" || strings.ContainsAny(first, ".=_") {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
