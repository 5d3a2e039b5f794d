package pkgconf

import (
	"fmt"
	"strconv"
	"strings"
)

// aptSetting is one assignment (or #clear) found in an apt configuration file.
type aptSetting struct {
	// Key is the full key, lower case ("acquire::forceipv4"): apt looks keys up case-insensitively.
	Key string
	// Value as written (quotes removed).
	Value string
	// Clear is true for a "#clear key;" directive.
	Clear bool
}

type aptTokKind int

const (
	tokWord aptTokKind = iota
	tokString
	tokOpen
	tokClose
	tokSemi
	tokClear
	tokInclude
)

type aptTok struct {
	kind aptTokKind
	text string
	line int
}

// tokenizeApt splits apt.conf(5) text into tokens: words, "quoted strings", { } ;, and the
// #clear / #include directives. Comments are //..., /* ... */ and # to the end of the line outside
// quotes (except the directives).
func tokenizeApt(src string) ([]aptTok, error) {
	var toks []aptTok
	line := 1
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '\n':
			line++
			i++
		case c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v':
			i++
		case strings.HasPrefix(src[i:], "//"):
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case strings.HasPrefix(src[i:], "/*"):
			end := strings.Index(src[i+2:], "*/")
			if end < 0 {
				return nil, fmt.Errorf("line %d: unterminated /* comment", line)
			}
			line += strings.Count(src[i:i+2+end], "\n")
			i += 2 + end + 2
		case strings.HasPrefix(src[i:], "#clear"):
			toks = append(toks, aptTok{tokClear, "#clear", line})
			i += len("#clear")
		case strings.HasPrefix(src[i:], "#include"):
			toks = append(toks, aptTok{tokInclude, "#include", line})
			i += len("#include")
		case c == '#':
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == '"':
			end := strings.IndexAny(src[i+1:], "\"\n")
			if end < 0 || src[i+1+end] != '"' {
				return nil, fmt.Errorf("line %d: unterminated quoted string", line)
			}
			toks = append(toks, aptTok{tokString, src[i+1 : i+1+end], line})
			i += end + 2
		case c == '{':
			toks = append(toks, aptTok{tokOpen, "{", line})
			i++
		case c == '}':
			toks = append(toks, aptTok{tokClose, "}", line})
			i++
		case c == ';':
			toks = append(toks, aptTok{tokSemi, ";", line})
			i++
		default:
			j := i
			for j < len(src) && !strings.ContainsRune(" \t\r\n\f\v{};\"", rune(src[j])) &&
				!strings.HasPrefix(src[j:], "//") && !strings.HasPrefix(src[j:], "/*") {
				j++
			}
			toks = append(toks, aptTok{tokWord, src[i:j], line})
			i = j
		}
	}
	return toks, nil
}

// parseApt returns the settings of one apt configuration file in order. Nested scopes
// ("Acquire { ForceIPv4 "true"; };") are flattened to full keys; list items ("x";) are skipped.
func parseApt(src string) ([]aptSetting, error) {
	toks, err := tokenizeApt(src)
	if err != nil {
		return nil, err
	}
	var scope []string
	var out []aptSetting
	full := func(k string) string {
		return strings.ToLower(strings.Join(append(append([]string{}, scope...), k), "::"))
	}
	isVal := func(t aptTok) bool { return t.kind == tokWord || t.kind == tokString }
	for i := 0; i < len(toks); {
		t := toks[i]
		next := func(n int) (aptTok, bool) {
			if i+n < len(toks) {
				return toks[i+n], true
			}
			return aptTok{}, false
		}
		switch t.kind {
		case tokSemi:
			i++
		case tokClose:
			if len(scope) == 0 {
				return nil, fmt.Errorf("line %d: unbalanced }", t.line)
			}
			scope = scope[:len(scope)-1]
			i++
		case tokOpen:
			return nil, fmt.Errorf("line %d: { without a key", t.line)
		case tokClear, tokInclude:
			j := i + 1
			var args []string
			for j < len(toks) && toks[j].kind != tokSemi {
				args = append(args, toks[j].text)
				j++
			}
			if j == len(toks) {
				return nil, fmt.Errorf("line %d: %s without ;", t.line, t.text)
			}
			if t.kind == tokClear {
				for _, a := range args {
					out = append(out, aptSetting{Key: full(a), Clear: true})
				}
			}
			i = j + 1
		default: // word or string
			n1, ok := next(1)
			if !ok {
				return nil, fmt.Errorf("line %d: %q is not followed by a value and ;", t.line, t.text)
			}
			switch {
			case n1.kind == tokOpen:
				scope = append(scope, strings.TrimSuffix(t.text, "::"))
				i += 2
			case n1.kind == tokSemi:
				if t.kind == tokWord {
					out = append(out, aptSetting{Key: full(t.text)})
				}
				i += 2
			case isVal(n1):
				n2, ok := next(2)
				switch {
				case ok && n2.kind == tokSemi:
					out = append(out, aptSetting{Key: full(t.text), Value: n1.text})
					i += 3
				case ok && n2.kind == tokOpen:
					out = append(out, aptSetting{Key: full(t.text), Value: n1.text})
					scope = append(scope, t.text)
					i += 3
				default:
					return nil, fmt.Errorf("line %d: missing ; after %s %q", t.line, t.text, n1.text)
				}
			default:
				return nil, fmt.Errorf("line %d: unexpected %q after %q", n1.line, n1.text, t.text)
			}
		}
	}
	if len(scope) != 0 {
		return nil, fmt.Errorf("unclosed { for %s", strings.Join(scope, "::"))
	}
	return out, nil
}

// aptBool interprets a value like apt's FindB: ok is false for values apt does not read as a
// boolean.
func aptBool(v string) (val, ok bool) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "yes", "true", "with", "on", "enable", "1":
		return true, true
	case "no", "false", "without", "off", "disable", "0":
		return false, true
	}
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
		return n != 0, true
	}
	return false, false
}
