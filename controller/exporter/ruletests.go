package exporter

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/kvmnet/kvmnet/controller/diagnose"
)

// expand fills an alert template the way Prometheus does for the labels tests use.
func expand(tmpl string, labels map[string]string) string {
	for k, v := range labels {
		tmpl = strings.ReplaceAll(tmpl, "{{ $labels."+k+" }}", v)
	}
	return tmpl
}

// testLabels are the labels a test series of ci carries.
func testLabels(ci diagnose.CodeInfo) map[string]string {
	l := map[string]string{"instance": "hv1:10077", "job": "kvmnet", "code": string(ci.Code), "severity": "error",
		"network": "", "domain": "", "mac": ""}
	switch ci.Scope {
	case diagnose.ScopeNetwork:
		l["network"] = "default"
	case diagnose.ScopeGuest:
		l["network"], l["domain"], l["mac"] = "default", "web1", "52:54:00:00:00:01"
	}
	return l
}

func seriesOf(name string, l map[string]string) string {
	var parts []string
	for _, k := range []string{"code", "domain", "instance", "job", "mac", "network", "severity"} {
		if v, ok := l[k]; ok && v != "" {
			parts = append(parts, fmt.Sprintf("%s=%q", k, v))
		}
	}
	return name + "{" + strings.Join(parts, ",") + "}"
}

// RenderRuleTests renders packaging/prometheus/kvmnet.rules.test.yml for `promtool test rules`:
// every alert fires once its finding lasted its `for:`, not before; a finding graded down to
// warning and one that cleared early fire nothing; the exporter-level alerts fire on their series.
func RenderRuleTests(cat []diagnose.CodeInfo) []byte {
	var b bytes.Buffer
	b.WriteString("# Generated with kvmnet.rules.yml (go test ./controller/exporter -run TestRulesAndRunbooks -update); do not edit.\n")
	b.WriteString("rule_files:\n  - kvmnet.rules.yml\nevaluation_interval: 1m\ntests:\n")
	for _, ci := range AlertCodes(cat) {
		l := testLabels(ci)
		fmt.Fprintf(&b, "  - name: %s\n    interval: 1m\n    input_series:\n", AlertName(ci.Code))
		fmt.Fprintf(&b, "      - series: %s\n        values: \"1x20\"\n", yq(seriesOf("kvmnet_finding", l)))
		before := "4m"
		if alertFor(ci) == "10m" {
			before = "9m"
		}
		summary, desc := findingAnnotations(ci)
		fmt.Fprintf(&b, "    alert_rule_test:\n      - eval_time: %s\n        alertname: %s\n        exp_alerts: []\n", before, AlertName(ci.Code))
		fmt.Fprintf(&b, "      - eval_time: 15m\n        alertname: %s\n        exp_alerts:\n          - exp_labels:\n", AlertName(ci.Code))
		sev := "warning"
		if ci.CausedOnHost() {
			sev = "critical"
		}
		for _, k := range []string{"code", "domain", "instance", "job", "mac", "network"} {
			if l[k] != "" {
				fmt.Fprintf(&b, "              %s: %s\n", k, yq(l[k]))
			}
		}
		fmt.Fprintf(&b, "              severity: %s\n              scope: %s\n", sev, ci.Scope)
		fmt.Fprintf(&b, "            exp_annotations:\n              summary: %s\n              description: %s\n              runbook_url: %s\n",
			yq(expand(summary, l)), yq(expand(desc, l)), yq(RunbookBase+ci.Runbook))
	}
	// Graded down to warning, or cleared before `for:`: no alert.
	b.WriteString(`  - name: warnings and short findings do not alert
    interval: 1m
    input_series:
      - series: 'kvmnet_finding{code="network_inactive",instance="hv1:10077",job="kvmnet",network="lab",severity="warning"}'
        values: "1x20"
      - series: 'kvmnet_finding{code="ip_forward_off",instance="hv1:10077",job="kvmnet",severity="error"}'
        values: "1 1 1 _x17"
    alert_rule_test:
      - eval_time: 15m
        alertname: KvmnetNetworkInactive
        exp_alerts: []
      - eval_time: 15m
        alertname: KvmnetIpForwardOff
        exp_alerts: []
`)
	for _, m := range metaAlerts {
		l := map[string]string{"instance": "hv1:10077", "job": "kvmnet"}
		series := `kvmnet_up{instance="hv1:10077",job="kvmnet"}`
		vals := "1 1 0x20"
		if m.name == "KvmnetGuestTimedOut" {
			l["domain"] = "web1"
			series = `kvmnet_guest_timed_out{domain="web1",instance="hv1:10077",job="kvmnet"}`
			vals = "1x20"
		}
		fmt.Fprintf(&b, "  - name: %s\n    interval: 1m\n    input_series:\n      - series: %s\n        values: %q\n", m.name, yq(series), vals)
		fmt.Fprintf(&b, "    alert_rule_test:\n      - eval_time: 18m\n        alertname: %s\n        exp_alerts:\n          - exp_labels:\n", m.name)
		for _, k := range []string{"domain", "instance", "job"} {
			if l[k] != "" {
				fmt.Fprintf(&b, "              %s: %s\n", k, yq(l[k]))
			}
		}
		fmt.Fprintf(&b, "              severity: %s\n            exp_annotations:\n              summary: %s\n              description: %s\n              runbook_url: %s\n",
			m.severity, yq(expand(m.summary, l)), yq(expand(m.description, l)), yq(RunbookBase+"docs/runbooks/README.md#"+m.anchor))
	}
	return b.Bytes()
}
