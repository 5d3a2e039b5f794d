package output

import (
	"fmt"
	"testing"
	"unicode/utf8"
)

func TestSanitize(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"plain", "enp1s0 192.168.122.50/24", "enp1s0 192.168.122.50/24"},
		{"unicode kept", "Wired connection é 有线", "Wired connection é 有线"},
		{"real replacement char kept", "a\uFFFDb", "a\uFFFDb"},
		{"newline and tab", "a\nb\tc", `a\x0ab\x09c`},
		{"ESC sequence", "\x1b[2J\x1b]0;pwned\x07", `\x1b[2J\x1b]0;pwned\x07`},
		{"DEL", "a\x7fb", `a\x7fb`},
		{"C1 CSI", "a\u009b31mb", `a\x9b31mb`},
		{"RLO override", "file\u202etxt.exe", `file\u202etxt.exe`},
		{"every embedding and override", "\u202a\u202b\u202c\u202d\u202e", `\u202a\u202b\u202c\u202d\u202e`},
		{"isolates", "\u2066\u2067\u2068\u2069", `\u2066\u2067\u2068\u2069`},
		{"marks", "\u200e\u200f\u061c", `\u200e\u200f\u061c`},
		{"invalid UTF-8", "eth\xff\xfe0", `eth\xff\xfe0`},
		{"truncated sequence", "a\xe2\x80", `a\xe2\x80`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Sanitize(tc.in)
			if got != tc.want {
				t.Fatalf("Sanitize(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if Sanitize(got) != got {
				t.Fatalf("not idempotent: %q", got)
			}
			if err := Unsafe(got); err != "" {
				t.Fatalf("still unsafe: %s", err)
			}
		})
	}
}

// Unsafe names the first character of s a terminal would interpret instead of show ("" when there
// is none besides newlines).
func Unsafe(s string) string {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			return fmt.Sprintf("invalid UTF-8 byte %#x at %d", s[i], i)
		case r == '\n':
		case r < 0x20 || (r >= 0x7f && r <= 0x9f) || bidi(r):
			return fmt.Sprintf("%U at %d", r, i)
		}
		i += size
	}
	return ""
}

func FuzzSanitize(f *testing.F) {
	for _, s := range []string{"", "ok", "\x1b[31m", "\u202e", "\xff", "\u009b", "a\nb"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := Sanitize(s)
		if !utf8.ValidString(got) {
			t.Fatalf("invalid UTF-8 out of %q: %q", s, got)
		}
		for _, r := range got {
			if r < 0x20 || (r >= 0x7f && r <= 0x9f) || bidi(r) {
				t.Fatalf("%U left in %q (from %q)", r, got, s)
			}
		}
		if safe(s) && got != s {
			t.Fatalf("safe text changed: %q -> %q", s, got)
		}
	})
}
