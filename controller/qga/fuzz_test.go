package qga

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
)

// FuzzParse feeds arbitrary replies to every parser: none may panic, and whatever they return must
// respect the bounds (counts, lengths, no control characters).
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.json")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(string(b))
		}
	}
	f.Add(`{"return":[{"name":"x","ip-addresses":[{"ip-address-type":"ipv4","ip-address":"1.2.3.4","prefix":-1}]}]}`)
	f.Add(`{"return":null}`)
	f.Add(`{"error":{"class":"\u0000","desc":"\u202e"}}`)
	f.Fuzz(func(t *testing.T, reply string) {
		ifs, err := ParseInterfaces(reply)
		if err == nil {
			if len(ifs) > MaxInterfaces {
				t.Fatalf("%d interfaces", len(ifs))
			}
			for _, it := range ifs {
				checkText(t, it.Name, MaxNameLen)
				if len(it.IPv4)+len(it.IPv6) > MaxAddresses {
					t.Fatalf("%d addresses", len(it.IPv4)+len(it.IPv6))
				}
				for _, a := range append(append([]string{}, it.IPv4...), it.IPv6...) {
					checkText(t, a, 64)
				}
				checkText(t, it.MAC, 17)
			}
		}
		if os, err := ParseOSInfo(reply); err == nil {
			for _, s := range []string{os.ID, os.Name, os.PrettyName, os.VersionID, os.KernelRelease, os.Machine} {
				checkText(t, s, MaxTextLen)
			}
		}
		if h, err := ParseHostName(reply); err == nil {
			checkText(t, h, MaxTextLen)
		}
		if in, err := ParseInfo(reply); err == nil && len(in.Enabled) > maxCommands {
			t.Fatalf("%d commands", len(in.Enabled))
		}
		if st, err := ParseExecStatus(reply); err == nil && (len(st.Stdout) > MaxOutputBytes || len(st.Stderr) > MaxOutputBytes) {
			t.Fatalf("output %d/%d bytes", len(st.Stdout), len(st.Stderr))
		}
		if _, err := unwrap(reply); err != nil {
			checkText(t, strings.TrimPrefix(err.Error(), "parse qemu-guest-agent reply: "), 4*MaxTextLen+64)
		}
	})
}

func checkText(t *testing.T, s string, max int) {
	t.Helper()
	if n := len([]rune(s)); n > max {
		t.Fatalf("%q: %d runes > %d", s, n, max)
	}
	for _, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			t.Fatalf("%q holds control character %U", s, r)
		}
	}
}
