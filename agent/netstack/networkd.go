package netstack

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// networkdDirs are searched for .network files, highest precedence first (a file name in an
// earlier directory hides the same name in later ones).
var networkdDirs = []string{"etc/systemd/network", "run/systemd/network", "usr/local/lib/systemd/network", "usr/lib/systemd/network", "lib/systemd/network"}

type networkFile struct {
	guest string
	match map[string][]string // [Match] key → values
}

type networkdConfig struct {
	running bool          // networkdStateFile exists: networkd is (or was) running this boot
	files   []networkFile // in the order networkd applies them (by file name)
}

type networkdLinkState struct {
	adminState  string
	networkFile string
}

// networkdStateFile is the manager state networkd writes once it runs. Not the directories
// around it: systemd's tmpfiles.d/systemd-network.conf creates /run/systemd/netif/links on every
// boot of every Debian 12 guest, networkd running or not (seen in the lab's ifupdown image).
const networkdStateFile = "run/systemd/netif/state"

func readNetworkd(root string) (networkdConfig, error) {
	c := networkdConfig{}
	if fi, err := os.Stat(filepath.Join(root, networkdStateFile)); err == nil && fi.Mode().IsRegular() {
		c.running = true
	}
	byName := map[string]string{} // file name → guest path (first directory wins)
	for _, d := range networkdDirs {
		entries, err := os.ReadDir(filepath.Join(root, d))
		if err != nil {
			continue
		}
		for _, e := range entries {
			if e.IsDir() || !strings.HasSuffix(e.Name(), ".network") {
				continue
			}
			if _, ok := byName[e.Name()]; !ok {
				byName[e.Name()] = "/" + d + "/" + e.Name()
			}
		}
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	slices.Sort(names)
	var errs []error
	for _, n := range names {
		guest := byName[n]
		b, err := os.ReadFile(filepath.Join(root, guest))
		if err != nil {
			errs = append(errs, fmt.Errorf("read %s: %w", guest, err))
			continue
		}
		if len(bytes.TrimSpace(b)) == 0 {
			continue // an empty file (or /dev/null mask) disables the name
		}
		c.files = append(c.files, networkFile{guest: guest, match: parseMatch(b)})
	}
	return c, errors.Join(errs...)
}

// parseMatch returns the [Match] section's settings; repeated keys accumulate, an empty
// assignment resets, as systemd does for list settings.
func parseMatch(b []byte) map[string][]string {
	m := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		t := strings.TrimSpace(sc.Text())
		if t == "" || t[0] == '#' || t[0] == ';' {
			continue
		}
		if strings.HasPrefix(t, "[") && strings.HasSuffix(t, "]") {
			section = t[1 : len(t)-1]
			continue
		}
		if section != "Match" {
			continue
		}
		k, v, ok := strings.Cut(t, "=")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if v == "" {
			delete(m, k)
			continue
		}
		m[k] = append(m[k], strings.Fields(v)...)
	}
	return m
}

// match returns the first .network file whose [Match] section selects the interface. Match keys
// kvmnet cannot evaluate (Host=, Virtualization=, ...) are assumed to match.
func (c networkdConfig) match(name, mac, driver string) string {
	for _, f := range c.files {
		if matchSection(f.match, name, mac, driver) {
			return f.guest
		}
	}
	return ""
}

func matchSection(m map[string][]string, name, mac, driver string) bool {
	for k, vals := range m {
		var ok bool
		switch k {
		case "Name", "OriginalName":
			ok = globList(vals, name)
		case "MACAddress", "PermanentMACAddress":
			ok = slices.ContainsFunc(vals, func(v string) bool { return strings.EqualFold(v, mac) })
		case "Driver":
			ok = globList(vals, driver)
		case "Type":
			ok = globList(vals, "ether")
		default:
			ok = true
		}
		if !ok {
			return false
		}
	}
	return true
}

// globList matches s against shell globs; a leading "!" on the first value inverts the list.
func globList(pats []string, s string) bool {
	invert := false
	if len(pats) > 0 && strings.HasPrefix(pats[0], "!") {
		invert = true
		pats = append([]string{strings.TrimPrefix(pats[0], "!")}, pats[1:]...)
	}
	hit := false
	for _, p := range pats {
		if ok, _ := filepath.Match(p, s); ok {
			hit = true
			break
		}
	}
	return hit != invert
}

// runtime reads networkd's state file for the interface (named by ifindex, found in sysfs).
func (c networkdConfig) runtime(root, name string) (networkdLinkState, bool) {
	if !c.running {
		return networkdLinkState{}, false
	}
	idx, err := os.ReadFile(filepath.Join(root, "sys/class/net", name, "ifindex"))
	if err != nil {
		return networkdLinkState{}, false
	}
	b, err := os.ReadFile(filepath.Join(root, "run/systemd/netif/links", strings.TrimSpace(string(idx))))
	if errors.Is(err, fs.ErrNotExist) || err != nil {
		return networkdLinkState{}, false
	}
	var st networkdLinkState
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		switch k {
		case "ADMIN_STATE":
			st.adminState = v
		case "NETWORK_FILE":
			st.networkFile = v
		}
	}
	return st, true
}
