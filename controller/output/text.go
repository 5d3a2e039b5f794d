package output

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Sanitize makes text safe for a terminal: what would be interpreted instead of shown is written as
// a visible escape — C0 controls and DEL (newline, ESC sequences, BEL: \x1b), C1 controls
// (U+0080–U+009F, e.g. the 8-bit CSI: \x9b), bidirectional overrides and isolates that reorder
// what follows (U+202A–U+202E, U+2066–U+2069, and the marks U+200E, U+200F, U+061C: \u202e), and
// bytes that are not UTF-8 (\xff). Every table and text path applies it to what it prints, guest
// text or not; JSON and YAML escape by themselves and do not use it.
func Sanitize(s string) string {
	if safe(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r < 0x20 || (r >= 0x7f && r <= 0x9f):
			fmt.Fprintf(&b, `\x%02x`, r)
		case bidi(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func safe(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f || c >= 0x80 {
			// Multi-byte text is checked rune by rune below; plain ASCII returns quickly.
			return safeRunes(s)
		}
	}
	return true
}

func safeRunes(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || (r >= 0x7f && r <= 0x9f) || bidi(r) {
			return false
		}
	}
	return true
}

// bidi reports the formatting characters that change the display order of the text after them.
func bidi(r rune) bool {
	return (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) || r == 0x200e || r == 0x200f || r == 0x061c
}

// Dash shows an empty cell as "-", anything else sanitised.
func Dash(s string) string {
	if s == "" {
		return "-"
	}
	return Sanitize(s)
}

// Plural counts: "1 guest", "2 guests".
func Plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}
