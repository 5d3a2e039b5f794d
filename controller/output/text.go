package output

import (
	"fmt"
	"strings"
)

// Sanitize makes text safe for a terminal: control characters (newlines, ESC sequences, C1 controls)
// are shown escaped, never interpreted. Every table and text path applies it to what it prints;
// JSON and YAML escape by themselves.
func Sanitize(s string) string {
	ok := true
	for _, r := range s {
		if r < 0x20 || (r >= 0x7f && r <= 0x9f) {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if r < 0x20 || (r >= 0x7f && r <= 0x9f) {
			fmt.Fprintf(&b, "\\x%02x", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
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
