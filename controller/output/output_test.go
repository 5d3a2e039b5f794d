package output

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"gopkg.in/yaml.v3"

	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
	"github.com/kvmnet/kvmnet/scripts/lab/testenv/goldenfile"
)

type findings struct{ rows [][]string }

func (f findings) Headers() []string { return []string{"SEVERITY", "CODE", "SUBJECT"} }
func (f findings) Rows() [][]string  { return f.rows }
func (f findings) RowStyle(i int) Style {
	return map[string]Style{"error": StyleError, "warning": StyleWarning}[f.rows[i][0]]
}
func (f findings) Summary() string { return "2 findings: 1 error, 1 warning" }

type plainStruct struct {
	Name    string   `json:"name"`
	Healthy bool     `json:"healthy"`
	Tags    []string `json:"tags"`
	Version string   `json:"version"`
}

var sample = findings{rows: [][]string{
	{"error", "dns_forwarding_broken", "vm1"},
	{"warning", "channel_socket_exposed", "vm-with-a-long-name"},
}}

var state = &kvmnetv1.GuestState{
	Hostname: "vm1", AgentVersion: "v0.1.0",
	Interfaces: []*kvmnetv1.Interface{{Name: "enp1s0", Mac: "52:54:00:12:34:56"}},
	Config:     &kvmnetv1.AgentConfig{AllowApply: false},
}

func TestRender(t *testing.T) {
	tests := []struct {
		name   string
		format Format
		color  bool
		v      any
	}{
		{"table", FormatTable, false, sample},
		{"table_color", FormatTable, true, sample},
		{"table_fallback_yaml", FormatTable, false, plainStruct{Name: "x", Tags: []string{"a"}, Version: "1.10"}},
		{"json_struct", FormatJSON, false, plainStruct{Name: "x", Healthy: true, Tags: []string{"a", "b"}, Version: "true"}},
		{"yaml_struct", FormatYAML, false, plainStruct{Name: "x", Healthy: true, Tags: []string{"a", "b"}, Version: "true"}},
		{"json_proto", FormatJSON, false, state},
		{"yaml_proto", FormatYAML, false, state},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := New(&buf, tc.format, nil).WithColor(tc.color).Render(tc.v); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", tc.name+".golden")
			if goldenfile.Update() {
				if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(buf.Bytes(), want) {
				t.Fatalf("output differs from %s:\n%s\nwant:\n%s", golden, buf.Bytes(), want)
			}
		})
	}
}

// TestJSONStable: protojson randomises whitespace; our JSON is identical on every call and parses.
func TestJSONStable(t *testing.T) {
	first, err := JSON(state)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		again, _ := JSON(state)
		if !bytes.Equal(first, again) {
			t.Fatalf("JSON not stable:\n%s\n%s", first, again)
		}
	}
	var m map[string]any
	if err := json.Unmarshal(first, &m); err != nil {
		t.Fatal(err)
	}
	if m["hostname"] != "vm1" || m["config"].(map[string]any)["allow_apply"] != false {
		t.Fatalf("proto names or zero values missing: %s", first)
	}
}

// TestYAMLKeepsStrings: strings that look like other YAML types stay strings.
func TestYAMLKeepsStrings(t *testing.T) {
	b, err := YAML(plainStruct{Name: "123", Version: "true", Tags: []string{"null", "1.10"}})
	if err != nil {
		t.Fatal(err)
	}
	var got plainStruct
	if err := yaml.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Name != "123" || got.Version != "true" || got.Tags[0] != "null" || got.Tags[1] != "1.10" {
		t.Fatalf("YAML round trip changed types: %+v from\n%s", got, b)
	}
}

func TestParseFormat(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Format
		ok   bool
	}{{"table", FormatTable, true}, {"JSON", FormatJSON, true}, {"yaml", FormatYAML, true}, {"xml", "", false}} {
		t.Run(tc.in, func(t *testing.T) {
			f, err := ParseFormat(tc.in)
			if (err == nil) != tc.ok || f != tc.want {
				t.Fatalf("ParseFormat(%q) = %q, %v", tc.in, f, err)
			}
		})
	}
}

func TestIsTerminal(t *testing.T) {
	if IsTerminal(&bytes.Buffer{}) {
		t.Fatal("a buffer is not a terminal")
	}
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if IsTerminal(f) {
		t.Fatal("a regular file is not a terminal")
	}
	if New(f, FormatTable, nil).pal.On() {
		t.Fatal("colour enabled for a file")
	}
}
