package qga

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestParseGolden parses qemu-guest-agent replies (testdata/*.json) and compares the sanitised result
// with testdata/*.golden.
func TestParseGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		t.Run(name, func(t *testing.T) {
			in, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var got any
			switch {
			case strings.HasPrefix(name, "interfaces-"):
				got, err = ParseInterfaces(string(in))
			case strings.HasPrefix(name, "osinfo-"):
				got, err = ParseOSInfo(string(in))
			case strings.HasPrefix(name, "info-"):
				got, err = ParseInfo(string(in))
			case strings.HasPrefix(name, "exec-status-"):
				var st ExecStatus
				st, err = ParseExecStatus(string(in))
				got = map[string]any{"status": st, "stdout": string(st.Stdout), "stderr": string(st.Stderr)}
			case strings.HasPrefix(name, "error-"):
				_, err = unwrap(string(in))
				got = map[string]any{"error": err.Error(), "disabled": Disabled(err)}
				err = nil
			default:
				t.Fatalf("no parser for %s", name)
			}
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			b, err := json.MarshalIndent(got, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			b = append(b, '\n')
			golden := strings.TrimSuffix(f, ".json") + ".golden"
			if *update {
				if err := os.WriteFile(golden, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if string(want) != string(b) {
				t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", golden, b, want)
			}
		})
	}
}
