package pkgconf

import (
	"strings"
)

// dnfIPResolve returns the ip_resolve value of the [main] section of a dnf.conf (last one wins).
func dnfIPResolve(b []byte) (value string, found bool) {
	section := ""
	for _, line := range strings.Split(string(b), "\n") {
		t := strings.TrimSpace(line)
		if t == "" || t[0] == '#' || t[0] == ';' {
			continue
		}
		if strings.HasPrefix(t, "[") && strings.HasSuffix(t, "]") {
			section = strings.TrimSpace(t[1 : len(t)-1])
			continue
		}
		k, v, ok := strings.Cut(t, "=")
		if ok && section == "main" && strings.TrimSpace(k) == "ip_resolve" {
			value, found = strings.TrimSpace(v), true
		}
	}
	return value, found
}

const dnfComment = "# set by kvmnet: download packages over IPv4 only"

// RenderDnf returns dnf.conf content (without kvmnet's header) with ip_resolve=4 set in [main]
// (force=true) or every ip_resolve line of [main] removed (force=false). Everything else is kept
// byte for byte. Without a [main] section one is added at the top.
func RenderDnf(orig []byte, force bool) []byte {
	text := string(orig)
	if text != "" && !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	lines := strings.SplitAfter(text, "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	section := ""
	mainAt, lastKeyInMain, replaced := -1, -1, false
	var out []string
	for _, line := range lines {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "[") && strings.HasSuffix(t, "]") {
			section = strings.TrimSpace(t[1 : len(t)-1])
			if section == "main" && mainAt < 0 {
				mainAt = len(out)
			}
			out = append(out, line)
			continue
		}
		if section == "main" && t != "" && t[0] != '#' && t[0] != ';' {
			if k, _, ok := strings.Cut(t, "="); ok && strings.TrimSpace(k) == "ip_resolve" {
				if force && !replaced {
					out = append(out, "ip_resolve=4\n")
					replaced = true
					lastKeyInMain = len(out) - 1
				}
				continue
			}
			lastKeyInMain = len(out)
		}
		if !force && t == dnfComment {
			continue
		}
		out = append(out, line)
	}
	if force && !replaced {
		ins := []string{dnfComment + "\n", "ip_resolve=4\n"}
		switch {
		case mainAt < 0:
			head := append([]string{"[main]\n"}, ins...)
			if len(out) > 0 {
				head = append(head, "\n")
			}
			out = append(head, out...)
		default:
			at := mainAt + 1
			if lastKeyInMain >= 0 {
				at = lastKeyInMain + 1
			}
			out = append(out[:at], append(ins, out[at:]...)...)
		}
	}
	return []byte(strings.Join(out, ""))
}
