package diagnose_test

import (
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/kvmnet/kvmnet/controller/diagnose"
	"github.com/kvmnet/kvmnet/controller/fixplan"
	"github.com/kvmnet/kvmnet/controller/snapshot"
)

var (
	hostFixRe  = regexp.MustCompile(`kvmnetctl host fix --only ([a-z_,]+)`)
	guestFixRe = regexp.MustCompile(`kvmnetctl guests fix (\S+)(?: --nic (\S+))?`)
)

// TestEveryFixActsOnItsFinding walks every finding every TestDiagnose case raises: the command a
// finding recommends must act on that finding (host fix --only CODE plans a step for it; guests fix
// plans a change for it instead of leaving it alone or calling it host-side), or the text says
// what to do by hand. And the catalogue's fixer for a code is the one its findings recommend.
func TestEveryFixActsOnItsFinding(t *testing.T) {
	snaps := diagnose.CaseSnapshots()
	names := make([]string, 0, len(snaps))
	for n := range snaps {
		names = append(names, n)
	}
	sort.Strings(names)
	recommended := map[diagnose.Code]map[diagnose.Fixer]bool{}
	for _, name := range names {
		s := snaps[name]
		all := diagnose.Diagnose(s).All()
		for _, f := range all {
			if _, ok := diagnose.Lookup(f.Code); !ok {
				t.Errorf("%s: %s is not in the catalogue", name, f.Code)
				continue
			}
			if recommended[f.Code] == nil {
				recommended[f.Code] = map[diagnose.Fixer]bool{}
			}
			switch {
			case hostFixRe.MatchString(f.Fix):
				if slices.Contains(strings.Split(hostFixRe.FindStringSubmatch(f.Fix)[1], ","), string(f.Code)) {
					recommended[f.Code][diagnose.FixerHost] = true
				} // else it names the host-side causes, walked as findings of their own
				checkHostFix(t, name, s, all, f)
			case guestFixRe.MatchString(f.Fix):
				recommended[f.Code][diagnose.FixerFor(f)] = true
				checkGuestFix(t, name, s, all, f)
			case strings.HasPrefix(f.Fix, "kvmnetctl guests install-agent"):
				// Named first, so it is the advice; a later enable-channel is the shortcut for a
				// guest that has the agent but lost its channel.
				recommended[f.Code][diagnose.FixerInstallAgent] = true
			case strings.Contains(f.Fix, "kvmnetctl guests enable-channel"):
				recommended[f.Code][diagnose.FixerEnableChannel] = true
			case strings.Contains(f.Fix, "kvmnetctl guests install-agent"):
				recommended[f.Code][diagnose.FixerInstallAgent] = true
			default:
				recommended[f.Code][diagnose.FixerManual] = true
				if strings.Contains(f.Fix, "kvmnetctl host fix") && !strings.Contains(f.Fix, "kvmnetctl host check") {
					t.Errorf("%s: %s recommends host fix without naming what it acts on: %s", name, f.Code, f.Fix)
				}
			}
		}
	}
	for _, c := range diagnose.Catalogue() {
		seen := recommended[c.Code]
		if len(seen) == 0 {
			continue // raised by no case here (TestDiagnose fails for that)
		}
		for fx := range seen {
			if fx != c.Fixer && fx != c.GuestSideFixer && (fx != diagnose.FixerManual || c.FixLimits == "") {
				t.Errorf("%s: a finding recommends %s, the catalogue says %s (guest side %q, limits %q)", c.Code, fx, c.Fixer, c.GuestSideFixer, c.FixLimits)
			}
		}
		switch {
		case !seen[c.Fixer] && c.FixLimits == "":
			t.Errorf("%s: the catalogue's fixer %s is recommended by no finding (seen %v) and it lists no limits", c.Code, c.Fixer, seen)
		}
	}
}

// checkHostFix: every code after --only is host-fixable, and host fix --only CODE plans a step for
// the findings of that code in the same report.
func checkHostFix(t *testing.T, name string, s snapshot.Snapshot, all []diagnose.Finding, f diagnose.Finding) {
	t.Helper()
	for _, c := range strings.Split(hostFixRe.FindStringSubmatch(f.Fix)[1], ",") {
		code := diagnose.Code(c)
		p, err := fixplan.Host(s, all, []diagnose.Code{code})
		if err != nil {
			t.Errorf("%s: %s recommends `host fix --only %s`, which refuses: %v", name, f.Code, code, err)
			continue
		}
		if !slices.ContainsFunc(p.Steps, func(st fixplan.HostStep) bool { return slices.Contains(st.Codes, code) }) {
			t.Errorf("%s: %s recommends `host fix --only %s`, which plans no step for it (manual %v, guest side %v): %s",
				name, f.Code, code, diagnose.Codes(p.Manual), diagnose.Codes(p.GuestSide), f.Fix)
		}
	}
}

// checkGuestFix: guests fix DOMAIN [--nic MAC] plans a change for the finding. When the plan
// cannot be built (no agent yet), the text must say what comes first ("..., then kvmnetctl guests
// fix").
func checkGuestFix(t *testing.T, name string, s snapshot.Snapshot, all []diagnose.Finding, f diagnose.Finding) {
	t.Helper()
	m := guestFixRe.FindStringSubmatch(f.Fix)
	if fx := diagnose.FixerFor(f); !fx.Guest() {
		t.Errorf("%s: %s recommends guests fix, the catalogue's fixer for it is %s: %s", name, f.Code, fx, f.Fix)
		return
	}
	// The recommended command's consent flags are part of it.
	p, err := fixplan.Guest(s, all, fixplan.GuestOptions{Domain: m[1], MAC: m[2], AllowStaticToDHCP: strings.Contains(f.Fix, "asks first"),
		AllowDNSReset: strings.Contains(f.Fix, diagnose.DNSResetFlag), ReplaceForeignProfile: strings.Contains(f.Fix, diagnose.ReplaceForeignProfileFlag)})
	if err != nil {
		if !strings.Contains(f.Fix, "then kvmnetctl guests fix") {
			t.Errorf("%s: %s recommends guests fix, which refuses (%v), and the text says nothing to do first: %s", name, f.Code, err, f.Fix)
		}
		return
	}
	for _, h := range p.HostSide {
		if h.Code == f.Code && h.Domain == f.Domain {
			t.Errorf("%s: %s recommends guests fix, which calls it host-side: %s", name, f.Code, f.Fix)
		}
	}
	for _, sk := range p.Skipped {
		if sk.Finding.Code == f.Code && sk.Finding.MAC == f.MAC {
			t.Errorf("%s: %s recommends guests fix, which leaves it alone (%s): %s", name, f.Code, sk.Reason, f.Fix)
		}
	}
	if p.Empty() {
		t.Errorf("%s: %s recommends guests fix, which plans nothing: %s", name, f.Code, f.Fix)
	}
}
