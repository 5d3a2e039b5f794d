package diagnose

import (
	"go/ast"
	"go/parser"
	"go/token"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// declaredCodes reads the Code constants of finding.go, so a code added there without a catalogue
// entry fails here.
func declaredCodes(t *testing.T) []Code {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "finding.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []Code
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, sp := range g.Specs {
			vs := sp.(*ast.ValueSpec)
			if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Code" {
				continue
			}
			for _, v := range vs.Values {
				s, err := strconv.Unquote(v.(*ast.BasicLit).Value)
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, Code(s))
			}
		}
	}
	return out
}

func TestCatalogueListsEveryCode(t *testing.T) {
	declared := declaredCodes(t)
	if len(declared) == 0 {
		t.Fatal("no Code constants found in finding.go")
	}
	cat := Catalogue()
	var listed []Code
	for _, c := range cat {
		if slices.Contains(listed, c.Code) {
			t.Errorf("%s is listed twice", c.Code)
		}
		listed = append(listed, c.Code)
		if !slices.Contains([]Scope{ScopeHost, ScopeNetwork, ScopeGuest}, c.Scope) {
			t.Errorf("%s: scope %q", c.Code, c.Scope)
		}
		if severityRank(c.Severity) == 0 {
			t.Errorf("%s: severity %q", c.Code, c.Severity)
		}
		if c.Summary == "" || strings.Contains(c.Summary, "\n") {
			t.Errorf("%s: summary %q", c.Code, c.Summary)
		}
		if c.Runbook != "docs/runbooks/"+string(c.Code)+".md" {
			t.Errorf("%s: runbook %q", c.Code, c.Runbook)
		}
		switch c.Fixer {
		case FixerHost:
			if c.FixCommand != "kvmnetctl host fix --only "+string(c.Code) {
				t.Errorf("%s: host fix command %q", c.Code, c.FixCommand)
			}
		case FixerGuestDHCP, FixerGuestIPv6:
			if !strings.HasPrefix(c.FixCommand, "kvmnetctl guests fix DOMAIN") {
				t.Errorf("%s: guest fix command %q", c.Code, c.FixCommand)
			}
		case FixerEnableChannel:
			if !strings.HasPrefix(c.FixCommand, "kvmnetctl guests enable-channel") {
				t.Errorf("%s: command %q", c.Code, c.FixCommand)
			}
		case FixerInstallAgent:
			if c.FixCommand != "kvmnetctl guests install-agent DOMAIN" {
				t.Errorf("%s: command %q", c.Code, c.FixCommand)
			}
		case FixerManual:
			if c.FixCommand != "" {
				t.Errorf("%s: manual code with command %q", c.Code, c.FixCommand)
			}
		default:
			t.Errorf("%s: fixer %q", c.Code, c.Fixer)
		}
		if got, ok := Lookup(c.Code); !ok || got != c {
			t.Errorf("Lookup(%s) = %+v, %v", c.Code, got, ok)
		}
	}
	for _, c := range declared {
		if !slices.Contains(listed, c) {
			t.Errorf("%s is declared in finding.go but not in the catalogue", c)
		}
	}
	for _, c := range listed {
		if !slices.Contains(declared, c) {
			t.Errorf("%s is in the catalogue but not declared in finding.go", c)
		}
	}
	if _, ok := Lookup("no_such_code"); ok {
		t.Error("Lookup of an unknown code succeeded")
	}
	cat[0].Summary = "changed"
	if Catalogue()[0].Summary == "changed" {
		t.Error("Catalogue returns the table itself, not a copy")
	}
}

func severityRank(s Severity) int {
	return map[Severity]int{SeverityInfo: 1, SeverityWarning: 2, SeverityError: 3}[s]
}

// checkAgainstCatalogue fails when a finding is graded above its code's severity or reported on a
// subject outside its scope.
func checkAgainstCatalogue(t *testing.T, f Finding) {
	t.Helper()
	c, ok := Lookup(f.Code)
	if !ok {
		t.Errorf("finding %s: code not in the catalogue", f.Code)
		return
	}
	if severityRank(f.Severity) > severityRank(c.Severity) {
		t.Errorf("finding %s is %s, the catalogue's highest is %s", f.Code, f.Severity, c.Severity)
	}
	if severityRank(f.Severity) < severityRank(c.Severity) && c.Grading == "" {
		t.Errorf("finding %s is %s below the catalogue's %s, which says no grading", f.Code, f.Severity, c.Severity)
	}
	subject := strings.Fields(f.Subject)[0]
	switch {
	case c.Scope == ScopeHost && subject != "host" && !(subject == "guest" && f.Domain != ""):
		t.Errorf("finding %s (scope host) has subject %q", f.Code, f.Subject)
	case c.Scope == ScopeNetwork && subject != "network":
		t.Errorf("finding %s (scope network) has subject %q", f.Code, f.Subject)
	case c.Scope == ScopeGuest && subject != "guest":
		t.Errorf("finding %s (scope guest) has subject %q", f.Code, f.Subject)
	}
}
