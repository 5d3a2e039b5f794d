package sysctl

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// PersistentFile is kvmnet's sysctl.d file that keeps IPv6 disabled across reboots.
const PersistentFile = "/etc/sysctl.d/99-kvmnet-disable-ipv6.conf"

// confDir is the per-interface IPv6 sysctl directory, relative to the root.
const confDir = "proc/sys/net/ipv6/conf"

// RenderDisable returns the body of PersistentFile (agent/managedfile adds the managed header).
func RenderDisable() []byte {
	return []byte(`# IPv6 is disabled because kvmnet was asked to (Apply set_ipv6 disable=true): NATed guests often
# get IPv6 addresses that route nowhere, and package managers then hang on IPv6 first.
# Re-enable through kvmnet (set_ipv6 disable=false), which removes this file.
net.ipv6.conf.all.disable_ipv6 = 1
net.ipv6.conf.default.disable_ipv6 = 1
`)
}

// ValidateInterfaceName checks a kernel interface name before it becomes part of a /proc path:
// 1-15 bytes, no "/", no whitespace, not "." or "..", not the reserved "all"/"default".
func ValidateInterfaceName(name string) error {
	if name == "" || len(name) > 15 || name == "." || name == ".." || name == "all" || name == "default" ||
		strings.ContainsAny(name, "/ \t\n\x00:") {
		return fmt.Errorf("invalid interface name %q: want 1-15 characters without '/', ':' or spaces", name)
	}
	return nil
}

// Write is one live sysctl write.
type Write struct {
	// Key in sysctl notation, e.g. "net.ipv6.conf.all.disable_ipv6" (dots in interface names
	// become "/", as sysctl(8) writes them).
	Key string
	// Path relative to the root, e.g. "proc/sys/net/ipv6/conf/all/disable_ipv6".
	Path string
	// Value to write, e.g. "1".
	Value string
}

func disableWrite(scope, value string) Write {
	return Write{
		Key:   "net.ipv6.conf." + strings.ReplaceAll(scope, ".", "/") + ".disable_ipv6",
		Path:  filepath.Join(confDir, scope, "disable_ipv6"),
		Value: value,
	}
}

// Reader reads IPv6 sysctls under a root directory.
type Reader struct {
	root string
}

// NewReader returns a Reader of <root>/proc/sys and <root>/etc.
func NewReader(root string) (*Reader, error) {
	if root == "" {
		return nil, errors.New("sysctl: root directory is required (\"/\" in production)")
	}
	return &Reader{root: root}, nil
}

// Read returns the current value of w's sysctl (trimmed), fs.ErrNotExist when absent.
func (r *Reader) Read(w Write) (string, error) {
	b, err := os.ReadFile(filepath.Join(r.root, w.Path))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// ipv6Present reports whether the kernel has IPv6 at all (ipv6.disable=1 on the command line
// removes /proc/sys/net/ipv6).
func (r *Reader) ipv6Present() bool {
	_, err := os.Stat(filepath.Join(r.root, confDir))
	return err == nil
}

// State reports the IPv6 sysctls of all, default and every interface in ifaces, and whether IPv6
// is usable: a global address (any scope-global address, ULA included) and a default route.
func (r *Reader) State(ifaces []*kvmnetv1.Interface, routes []*kvmnetv1.Route) (*kvmnetv1.IPv6State, error) {
	st := &kvmnetv1.IPv6State{InterfaceDisabled: map[string]bool{}}
	if _, err := os.Lstat(filepath.Join(r.root, PersistentFile)); err == nil {
		st.PersistentDisableFile = true
	}
	for _, in := range ifaces {
		for _, c := range in.GetIpv6() {
			if p, err := netip.ParsePrefix(c); err == nil && p.Addr().IsGlobalUnicast() {
				st.HasGlobalAddress = true
			}
		}
	}
	for _, rt := range routes {
		if rt.GetFamily() == 6 && rt.GetDestination() == "default" {
			st.HasDefaultRoute = true
		}
	}
	if !r.ipv6Present() {
		// No IPv6 in the kernel: everything is off.
		st.AllDisabled, st.DefaultDisabled = true, true
		for _, in := range ifaces {
			st.InterfaceDisabled[in.GetName()] = true
		}
		return st, nil
	}
	var errs []error
	read := func(scope string) bool {
		v, err := r.Read(disableWrite(scope, ""))
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("read IPv6 sysctl of %s: %w", scope, err))
			}
			return false
		}
		return v != "0"
	}
	st.AllDisabled = read("all")
	st.DefaultDisabled = read("default")
	for _, in := range ifaces {
		if ValidateInterfaceName(in.GetName()) != nil {
			continue
		}
		st.InterfaceDisabled[in.GetName()] = read(in.GetName())
	}
	st.Usable = st.HasGlobalAddress && st.HasDefaultRoute && !st.AllDisabled
	return st, errors.Join(errs...)
}

// sysctlDirs are searched, like systemd-sysctl does, for other files that disable IPv6.
var sysctlDirs = []string{"etc/sysctl.d", "run/sysctl.d", "usr/local/lib/sysctl.d", "usr/lib/sysctl.d", "lib/sysctl.d"}

// OtherDisablingFiles lists files other than PersistentFile (sysctl.d directories and
// /etc/sysctl.conf) that set some disable_ipv6 to 1 at boot: re-enabling IPv6 through kvmnet does
// not survive a reboot while they exist.
func (r *Reader) OtherDisablingFiles() []string {
	var cands []string
	for _, d := range sysctlDirs {
		matches, _ := filepath.Glob(filepath.Join(r.root, d, "*.conf"))
		cands = append(cands, matches...)
	}
	cands = append(cands, filepath.Join(r.root, "etc/sysctl.conf"))
	var out []string
	for _, abs := range cands {
		guest := "/" + strings.TrimPrefix(strings.TrimPrefix(abs, r.root), "/")
		if guest == PersistentFile {
			continue
		}
		b, err := os.ReadFile(abs)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || line[0] == '#' || line[0] == ';' {
				continue
			}
			k, v, ok := strings.Cut(strings.TrimPrefix(line, "-"), "=")
			if !ok {
				continue
			}
			k = strings.ReplaceAll(strings.TrimSpace(k), "/", ".")
			if strings.HasPrefix(k, "net.ipv6.conf.") && strings.HasSuffix(k, ".disable_ipv6") && strings.TrimSpace(v) == "1" {
				out = append(out, guest)
				break
			}
		}
	}
	return out
}
