package kvmnetv1_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportBoundaries keeps the two programs meeting only through this contract: no controller
// package imports anything under agent/ (or the reverse) outside tests, and the pure decision
// packages do no I/O of their own and no presentation (tables belong to controller/output).
func TestImportBoundaries(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "github.com/kvmnet/kvmnet/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	const mod = "github.com/kvmnet/kvmnet/"
	pure := map[string]bool{mod + "controller/diagnose": true, mod + "controller/fixplan": true,
		mod + "controller/checks": true, mod + "controller/snapshot": true}
	banned := []string{"os", "os/exec", "net/http", "google.golang.org/grpc", "libvirt.org/go/libvirt",
		"github.com/vishvananda/netlink", "text/tabwriter"}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		pkg, imports := f[0], f[1:]
		checked++
		for _, imp := range imports {
			switch {
			case strings.HasPrefix(pkg, mod+"controller/") && strings.HasPrefix(imp, mod+"agent/"):
				t.Errorf("%s imports %s: the controller may use only the contract under proto/", pkg, imp)
			case strings.HasPrefix(pkg, mod+"agent/") && strings.HasPrefix(imp, mod+"controller/"):
				t.Errorf("%s imports %s: the agent may use only the contract under proto/", pkg, imp)
			}
			if pure[pkg] {
				for _, b := range banned {
					if imp == b || strings.HasPrefix(imp, b+"/") && b != "os" {
						t.Errorf("%s imports %s: decision code takes and returns plain structs, no I/O", pkg, imp)
					}
				}
			}
		}
	}
	if checked < 20 {
		t.Fatalf("go list named only %d packages; expected the whole module", checked)
	}
}
