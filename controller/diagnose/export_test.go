package diagnose

import "github.com/kvmnet/kvmnet/controller/snapshot"

// CaseSnapshots returns the snapshot of every TestDiagnose case, and the golden one, by name: the
// walk in walk_test.go (package diagnose_test, which may import fixplan) runs the fixers on them.
func CaseSnapshots() map[string]snapshot.Snapshot {
	out := map[string]snapshot.Snapshot{"golden": goldenSnapshot()}
	for _, tc := range append(cases(), bridgedCases()...) {
		s := tc.base()
		if tc.mutate != nil {
			tc.mutate(&s)
		}
		out[tc.name] = s
	}
	return out
}
