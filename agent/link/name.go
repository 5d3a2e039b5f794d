package link

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// DisplayName returns an interface name as the agent reports it. The kernel accepts any bytes but
// '/', ':' and whitespace in a name, while every string on the wire must be UTF-8 (one bad name
// would fail the whole GetState): a name that is not valid UTF-8 keeps its valid characters and
// shows each invalid byte as \xNN, so the raw bytes stay readable and the rest of the view arrives.
// Valid names are returned unchanged.
func DisplayName(raw string) string {
	if utf8.ValidString(raw) {
		return raw
	}
	var b strings.Builder
	for i := 0; i < len(raw); {
		r, size := utf8.DecodeRuneInString(raw[i:])
		if r == utf8.RuneError && size == 1 {
			fmt.Fprintf(&b, `\x%02x`, raw[i])
		} else {
			b.WriteString(raw[i : i+size])
		}
		i += size
	}
	return b.String()
}
