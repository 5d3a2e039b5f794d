package hostnet

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/vishvananda/netns"
)

// Sysctl reads and writes kernel parameters by dotted name ("net.ipv4.ip_forward").
type Sysctl interface {
	Read(key string) (string, error)
	Write(key, value string) error
}

// ProcSysctl reads /proc/sys under Root (default /proc/sys) from the calling thread, i.e. in the
// current network namespace. Use it for the real host, or with a fixture directory in unit tests.
type ProcSysctl struct {
	// Root is the /proc/sys directory; "" means /proc/sys.
	Root string
}

func keyPath(root, key string) string {
	if root == "" {
		root = "/proc/sys"
	}
	return filepath.Join(root, strings.ReplaceAll(key, ".", "/"))
}

// Read returns the trimmed value of key.
func (p ProcSysctl) Read(key string) (string, error) {
	b, err := os.ReadFile(keyPath(p.Root, key))
	if err != nil {
		return "", fmt.Errorf("read sysctl %s: %w", key, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// Write sets key to value.
func (p ProcSysctl) Write(key, value string) error {
	if err := os.WriteFile(keyPath(p.Root, key), []byte(value+"\n"), 0o644); err != nil {
		return fmt.Errorf("write sysctl %s: %w", key, err)
	}
	return nil
}

// NetnsSysctl reads and writes /proc/sys inside the network namespace NS: each access runs on a
// locked OS thread switched into NS, because /proc/sys/net shows the namespace of the thread that
// opens the file (a /proc/<pid>/... path does not help for /proc/sys).
type NetnsSysctl struct {
	// NS is the namespace; it must stay open while the NetnsSysctl is used.
	NS netns.NsHandle
}

// Read returns the trimmed value of key as seen inside NS.
func (n NetnsSysctl) Read(key string) (string, error) {
	var v string
	err := inNetns(n.NS, func() error {
		var err error
		v, err = ProcSysctl{}.Read(key)
		return err
	})
	return v, err
}

// Write sets key to value inside NS.
func (n NetnsSysctl) Write(key, value string) error {
	return inNetns(n.NS, func() error { return ProcSysctl{}.Write(key, value) })
}

// IPForwardKey is the sysctl that lets the host route guest traffic.
const IPForwardKey = "net.ipv4.ip_forward"

// IPForwardFile is where the fix persists it (relative to the etc root, i.e. /etc/sysctl.d/...).
const IPForwardFile = "/etc/sysctl.d/99-kvmnet-ip-forward.conf"

// IPForwardFix is the exact change that turns IPv4 forwarding on now and at every boot.
type IPForwardFix struct {
	// Command is the live change as a user would type it.
	Command string `json:"command"`
	// File is the persistent file (path as on the host).
	File string `json:"file"`
	// Content is what File will contain.
	Content string `json:"content"`
	// Overridden lists files that set ip_forward to 0 and are read after File at boot (they would undo
	// the persisted setting); the user has to edit them.
	Overridden []string `json:"overridden,omitempty"`
}

// String is the change as printed before it runs.
func (f IPForwardFix) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "run: %s\nwrite %s:\n%s", f.Command, f.File, indent(f.Content))
	for _, o := range f.Overridden {
		fmt.Fprintf(&b, "warning: %s sets %s = 0 and is applied after %s at boot: remove that line\n", o, IPForwardKey, f.File)
	}
	return b.String()
}

func indent(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString("    " + l + "\n")
	}
	return b.String()
}

// ipForwardContent is the persisted file.
const ipForwardContent = "# managed by kvmnet (kvmnetctl host fix): libvirt NAT and routed networks need IPv4 forwarding.\n" +
	"net.ipv4.ip_forward = 1\n"

// sysctlDirs are read at boot in this order of precedence for equal file names; across names the
// lexical order of the base name decides (systemd-sysctl and procps `sysctl --system` both).
var sysctlDirs = []string{"/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d", "/usr/lib/sysctl.d", "/lib/sysctl.d"}

// findOverrides lists sysctl files under etcRoot that set ip_forward to 0 and are applied after
// IPForwardFile (a later base name, or /etc/sysctl.conf which procps applies last).
func findOverrides(etcRoot string) []string {
	base := filepath.Base(IPForwardFile)
	var out []string
	for _, d := range sysctlDirs {
		ents, _ := os.ReadDir(filepath.Join(etcRoot, d))
		for _, e := range ents {
			if !strings.HasSuffix(e.Name(), ".conf") || e.Name() <= base {
				continue
			}
			p := filepath.Join(d, e.Name())
			if setsForwardOff(filepath.Join(etcRoot, p)) {
				out = append(out, p)
			}
		}
	}
	if setsForwardOff(filepath.Join(etcRoot, "/etc/sysctl.conf")) {
		out = append(out, "/etc/sysctl.conf")
	}
	sort.Strings(out)
	return out
}

func setsForwardOff(path string) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || l[0] == '#' || l[0] == ';' {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		k = strings.TrimPrefix(strings.TrimSpace(k), "-")
		if ok && strings.ReplaceAll(k, "/", ".") == IPForwardKey && strings.TrimSpace(v) == "0" {
			return true
		}
	}
	return false
}
