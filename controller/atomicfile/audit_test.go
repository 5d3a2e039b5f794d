package atomicfile

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// TestControllerWritesGoThroughWrite: no controller code outside this package writes or renames a
// file with the os package directly (nor prometheus.WriteToTextfile, which renames without fsync).
// The one exception is a live sysctl write under /proc/sys, which is no file on disk.
func TestControllerWritesGoThroughWrite(t *testing.T) {
	banned := map[string]bool{"os.WriteFile": true, "os.Create": true, "os.Rename": true, "os.CreateTemp": true, "prometheus.WriteToTextfile": true}
	allowed := map[string]bool{"hostnet/sysctl.go os.WriteFile": true}
	root := ".."
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() && (rel == "atomicfile" || rel == "e2e" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			x, ok := sel.X.(*ast.Ident)
			if !ok {
				return true
			}
			call := x.Name + "." + sel.Sel.Name
			if banned[call] && !allowed[rel+" "+call] {
				t.Errorf("%s: %s writes a host file without atomicfile.Write (fsync, rename, fsync of the directory)", fset.Position(sel.Pos()), call)
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
