package exporter

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxLabelLen caps a label value in bytes. Domain and interface names are far shorter (libvirt
// names, IFNAMSIZ 16); the cap only stops a hostile guest from bloating every scrape.
const MaxLabelLen = 128

// sanitize makes s safe as a label value: invalid UTF-8 becomes U+FFFD, control and other
// non-printing characters become '?', and the result is cut to MaxLabelLen bytes on a rune boundary.
func sanitize(s string) string {
	if len(s) <= MaxLabelLen && isClean(s) {
		return s
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	for _, r := range s {
		if !unicode.IsPrint(r) && r != ' ' {
			r = '?'
		}
		if b.Len()+utf8.RuneLen(r) > MaxLabelLen {
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}

func isClean(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) && r != ' ' {
			return false
		}
	}
	return true
}
