package netstack

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// ifupdownInterfaces is ifupdown's main file.
const ifupdownInterfaces = "/etc/network/interfaces"

type ifupdownStanza struct {
	file     string   // guest path of the file with the iface line
	families []string // "inet dhcp", "inet6 auto", ...
	auto     bool     // listed in auto / allow-auto / allow-hotplug
}

type ifupdownConfig struct {
	installed bool
	stanzas   map[string]*ifupdownStanza
	// sourceGlobs and sourceDirs are the guest paths the configuration includes (source PATTERN,
	// source-directory DIR), to tell whether a file in interfaces.d is read at all.
	sourceGlobs, sourceDirs []string
}

// includes reports whether the configuration reads guest (a file path).
func (c ifupdownConfig) includes(guest string) bool {
	for _, g := range c.sourceGlobs {
		if ok, _ := filepath.Match(g, guest); ok {
			return true
		}
	}
	dir, base := filepath.Split(guest)
	return slices.Contains(c.sourceDirs, filepath.Clean(dir)) && sourceDirName.MatchString(base)
}

// stale returns configured interface names (other than lo) that do not exist in the guest: the
// "hard-coded interface name" failure (eth0 configured, NIC is enp1s0).
func (c ifupdownConfig) stale(existing map[string]bool) []string {
	var out []string
	for name := range c.stanzas {
		if name != "lo" && !existing[name] {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// source-directory only includes files whose names match this (run-parts rules).
var sourceDirName = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)

// readIfupdown parses /etc/network/interfaces and everything it includes with source (globs) and
// source-directory. Relative include paths are relative to the including file's directory.
func readIfupdown(root string) (ifupdownConfig, error) {
	c := ifupdownConfig{stanzas: map[string]*ifupdownStanza{}}
	_, errMain := os.Stat(filepath.Join(root, ifupdownInterfaces))
	_, errIfup := os.Stat(filepath.Join(root, "sbin/ifup"))
	c.installed = errMain == nil || errIfup == nil
	if errMain != nil {
		return c, nil
	}
	p := &ifupdownParser{root: root, cfg: &c, seen: map[string]bool{}, autos: map[string]bool{}}
	err := p.parseFile(ifupdownInterfaces, 0)
	for name := range p.autos {
		if st, ok := c.stanzas[name]; ok {
			st.auto = true
		}
	}
	return c, err
}

type ifupdownParser struct {
	root  string
	cfg   *ifupdownConfig
	seen  map[string]bool
	autos map[string]bool
}

func (p *ifupdownParser) parseFile(guest string, depth int) error {
	if depth > 8 {
		return fmt.Errorf("%s: includes nested too deeply", guest)
	}
	if p.seen[guest] {
		return nil
	}
	p.seen[guest] = true
	b, err := os.ReadFile(filepath.Join(p.root, guest))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && depth > 0 {
			return nil
		}
		return fmt.Errorf("read %s: %w", guest, err)
	}
	var errs []error
	for _, line := range logicalLines(string(b)) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch {
		case f[0] == "iface" && len(f) >= 4:
			st, ok := p.cfg.stanzas[f[1]]
			if !ok {
				st = &ifupdownStanza{file: guest}
				p.cfg.stanzas[f[1]] = st
			}
			st.families = append(st.families, f[2]+" "+f[3])
		case f[0] == "auto" || strings.HasPrefix(f[0], "allow-"):
			for _, n := range f[1:] {
				p.autos[n] = true
			}
		case f[0] == "source" && len(f) >= 2:
			for _, pat := range f[1:] {
				p.cfg.sourceGlobs = append(p.cfg.sourceGlobs, p.rel(guest, pat))
				matches, err := filepath.Glob(filepath.Join(p.root, p.rel(guest, pat)))
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: source %s: %w", guest, pat, err))
					continue
				}
				slices.Sort(matches)
				for _, m := range matches {
					if fi, err := os.Stat(m); err == nil && fi.Mode().IsRegular() {
						errs = append(errs, p.parseFile(p.guestOf(m), depth+1))
					}
				}
			}
		case f[0] == "source-directory" && len(f) >= 2:
			for _, dir := range f[1:] {
				g := p.rel(guest, dir)
				p.cfg.sourceDirs = append(p.cfg.sourceDirs, g)
				entries, err := os.ReadDir(filepath.Join(p.root, g))
				if err != nil {
					continue
				}
				for _, e := range entries {
					if !e.IsDir() && sourceDirName.MatchString(e.Name()) {
						errs = append(errs, p.parseFile(filepath.Join(g, e.Name()), depth+1))
					}
				}
			}
		}
	}
	return errors.Join(errs...)
}

// rel resolves an include path as a guest path.
func (p *ifupdownParser) rel(from, path string) string {
	if filepath.IsAbs(path) {
		return filepath.Clean(path)
	}
	return filepath.Join(filepath.Dir(from), path)
}

func (p *ifupdownParser) guestOf(abs string) string {
	rel, err := filepath.Rel(p.root, abs)
	if err != nil {
		return abs
	}
	return "/" + rel
}

// logicalLines joins backslash continuations and drops comments (lines whose first non-blank
// character is #).
func logicalLines(s string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(s, "\n") {
		t := strings.TrimSpace(line)
		if cur.Len() == 0 && strings.HasPrefix(t, "#") {
			continue
		}
		if strings.HasSuffix(t, `\`) {
			cur.WriteString(strings.TrimSuffix(t, `\`) + " ")
			continue
		}
		cur.WriteString(t)
		out = append(out, cur.String())
		cur.Reset()
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}
