package pkgconf

import (
	"strings"
	"testing"
)

func settingsString(ss []aptSetting) string {
	var out []string
	for _, s := range ss {
		if s.Clear {
			out = append(out, "#clear "+s.Key)
		} else {
			out = append(out, s.Key+"="+s.Value)
		}
	}
	return strings.Join(out, " | ")
}

func TestParseApt(t *testing.T) {
	tests := []struct {
		name, src, want, wantErr string
	}{
		{"flat", `Acquire::ForceIPv4 "true";`, "acquire::forceipv4=true", ""},
		{"unquoted value", "Acquire::ForceIPv4 true;", "acquire::forceipv4=true", ""},
		{"nested", "Acquire {\n  ForceIPv4 \"true\";\n};", "acquire::forceipv4=true", ""},
		{"nested deeper", `APT { Get { Assume-Yes "1"; }; }; Acquire::http { Proxy "http://p:3128"; };`,
			"apt::get::assume-yes=1 | acquire::http::proxy=http://p:3128", ""},
		{"case-insensitive keys", `acquire::forceipv4 "yes";`, "acquire::forceipv4=yes", ""},
		{"line comment", "// Acquire::ForceIPv4 \"true\";\nAcquire::Retries \"3\";", "acquire::retries=3", ""},
		{"hash comment", "# Acquire::ForceIPv4 \"true\";\nAcquire::Retries \"3\"; # trailing", "acquire::retries=3", ""},
		{"block comment", "/* Acquire::ForceIPv4 \"true\";\n more */ Acquire::ForceIPv4 \"false\";", "acquire::forceipv4=false", ""},
		{"hash inside quotes", `Acquire::http::Proxy "http://x/#y";`, "acquire::http::proxy=http://x/#y", ""},
		{"clear", "Acquire::ForceIPv4 \"true\";\n#clear Acquire::ForceIPv4;", "acquire::forceipv4=true | #clear acquire::forceipv4", ""},
		{"include ignored", "#include \"/etc/other\";\nA \"1\";", "a=1", ""},
		{"list items skipped", `DPkg::Pre-Invoke { "echo a"; "echo b"; }; B "2";`, "b=2", ""},
		{"unattended-upgrades style", "Unattended-Upgrade::Allowed-Origins {\n\t\"${distro_id}:${distro_codename}\";\n};\n", "", ""},
		{"empty", "", "", ""},
		{"missing semicolon", `Acquire::ForceIPv4 "true"`, "", "missing ;"},
		{"unbalanced close", `};`, "", "unbalanced"},
		{"unclosed block", `Acquire { ForceIPv4 "true";`, "", "unclosed"},
		{"unterminated string", `Acquire::ForceIPv4 "true;`, "", "unterminated"},
		{"unterminated comment", `/* x`, "", "unterminated"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseApt(tc.src)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s := settingsString(got); s != tc.want {
				t.Fatalf("got %q, want %q", s, tc.want)
			}
		})
	}
}

func TestAptBool(t *testing.T) {
	for v, want := range map[string]bool{"true": true, "TRUE": true, "yes": true, "on": true, "1": true, "2": true,
		"false": false, "no": false, "0": false, "off": false} {
		if got, ok := aptBool(v); !ok || got != want {
			t.Errorf("aptBool(%q) = %v, %v", v, got, ok)
		}
	}
	if _, ok := aptBool("maybe"); ok {
		t.Error("aptBool(maybe) ok")
	}
}

func FuzzParseApt(f *testing.F) {
	for _, s := range []string{
		`Acquire::ForceIPv4 "true";`,
		"Acquire {\n ForceIPv4 \"true\";\n};",
		"/* c */ // c\n# c\n#clear A::B;\n#include \"x\";",
		`DPkg::Pre-Invoke { "echo a"; }; A::B c { D "e"; };`,
		`}{;;"`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		ss, err := parseApt(src)
		if err != nil {
			return
		}
		for _, s := range ss {
			if s.Key != strings.ToLower(s.Key) {
				t.Fatalf("key not lower case: %q", s.Key)
			}
		}
	})
}
