package exporter

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kvmnet/kvmnet/controller/diagnose"
	"github.com/kvmnet/kvmnet/scripts/lab/testenv/goldenfile"
)

const (
	rulesPath     = "../../packaging/prometheus/kvmnet.rules.yml"
	ruleTestsPath = "../../packaging/prometheus/kvmnet.rules.test.yml"
	runbookDir    = "../../docs/runbooks"
)

// upToDate compares a generated file with the repository's (rewriting it with -update).
func upToDate(t *testing.T, path string, want []byte) {
	t.Helper()
	if goldenfile.Update() {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s (go test ./controller/exporter -run TestRulesAndRunbooks -update creates it): %v", path, err)
	}
	if string(got) != string(want) {
		t.Errorf("%s is not what the catalogue gives: go test ./controller/exporter -run TestRulesAndRunbooks -update", path)
	}
}

// The rules, their promtool tests and the runbooks are generated from the catalogue and committed:
// every error-level code has an alert and a runbook, every alert and runbook names a code of the
// catalogue, every runbook has its four sections and the kvmnetctl command, and promtool accepts
// the rules and passes their tests.
func TestRulesAndRunbooks(t *testing.T) {
	cat := diagnose.Catalogue()
	upToDate(t, rulesPath, RenderRules(cat))
	upToDate(t, ruleTestsPath, RenderRuleTests(cat))
	upToDate(t, filepath.Join(runbookDir, "README.md"), RenderRunbookIndex(cat))
	known := map[string]diagnose.CodeInfo{}
	for _, ci := range cat {
		known[string(ci.Code)] = ci
		if impacts[ci.Code] == "" {
			t.Errorf("%s: no impact text in controller/exporter/runbooks.go", ci.Code)
		}
		rb := RenderRunbook(ci)
		upToDate(t, filepath.Join("../..", ci.Runbook), rb)
		for _, sec := range []string{"## Meaning", "## Impact", "## Diagnosis", "## Mitigation", "kvmnetctl "} {
			if !strings.Contains(string(rb), sec) {
				t.Errorf("runbook %s lacks %q", ci.Code, sec)
			}
		}
	}

	rules, _ := os.ReadFile(rulesPath)
	alertCodes := map[string]bool{}
	for _, m := range regexp.MustCompile(`kvmnet_finding\{code="([a-z0-9_]+)"`).FindAllStringSubmatch(string(rules), -1) {
		if _, ok := known[m[1]]; !ok {
			t.Errorf("alert on unknown code %s", m[1])
		}
		alertCodes[m[1]] = true
	}
	for _, ci := range cat {
		if ci.Severity == diagnose.SeverityError && !alertCodes[string(ci.Code)] {
			t.Errorf("error-level code %s has no alert", ci.Code)
		}
	}
	for _, m := range regexp.MustCompile(`runbook_url: "[^"]*/(docs/runbooks/[^"#]+)`).FindAllStringSubmatch(string(rules), -1) {
		if _, err := os.Stat(filepath.Join("../..", m[1])); err != nil {
			t.Errorf("alert links a runbook that does not exist: %s", m[1])
		}
	}
	ents, err := os.ReadDir(runbookDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		code, isMD := strings.CutSuffix(e.Name(), ".md")
		if e.Name() == "README.md" {
			continue
		}
		if _, isCode := known[code]; !isMD || !isCode {
			t.Errorf("docs/runbooks/%s names no code of the catalogue", e.Name())
		}
	}
	if n := len(AlertCodes(cat)); n < 10 {
		t.Errorf("only %d alerts", n)
	}

	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: install Debian's prometheus package (bash scripts/install-deps.sh)")
	}
	for _, args := range [][]string{{"check", "rules", rulesPath}, {"test", "rules", ruleTestsPath}} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		} else {
			t.Logf("promtool %s: %s", strings.Join(args, " "), strings.TrimSpace(string(out)))
		}
	}
}
