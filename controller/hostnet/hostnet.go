package hostnet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/kvmnet/kvmnet/controller/atomicfile"
	"github.com/kvmnet/kvmnet/controller/snapshot"
)

// Config is what a Reader reads through. Handle and Sysctl must address the same network namespace
// as Netns.
type Config struct {
	// Handle is a netlink handle in the namespace to read (netlink.NewHandleAt(ns)).
	Handle *netlink.Handle
	// Netns is that namespace, for the few reads netlink's library does not offer (bridge STP) and the
	// DNS probe; netns.None() means the current namespace.
	Netns netns.NsHandle
	// Sysctl reads net.ipv4.ip_forward there (NetnsSysctl for another namespace).
	Sysctl Sysctl
	// FSRoot is where libvirt's run directory is seen: "/" on a host, /proc/<libvirtd pid>/root for a
	// libvirtd in its own mount namespace. "" means "/".
	FSRoot string
	// EtcRoot is the root under which the ip_forward fix writes /etc/sysctl.d; "" means "/".
	EtcRoot string
	// RunDir is libvirt's run directory inside FSRoot; "" means /run/libvirt.
	RunDir string
	// ProcDir is the /proc of the PID namespace dnsmasq runs in; "" means /proc.
	ProcDir string
	// DNSTimeout bounds the DNS probe of each dnsmasq; 0 means 1 s.
	DNSTimeout time.Duration
	// DNSPort is the port probed on the bridge IP; 0 means 53 (tests use a local fake).
	DNSPort int
}

// Reader reads the host network facts of one namespace. Its methods are safe for concurrent use.
type Reader struct {
	cfg     Config
	closers []func()
}

// New returns a Reader over cfg. Handle and Sysctl are required.
func New(cfg Config) (*Reader, error) {
	if cfg.Handle == nil || cfg.Sysctl == nil {
		return nil, errors.New("hostnet: Config needs Handle and Sysctl")
	}
	if cfg.FSRoot == "" {
		cfg.FSRoot = "/"
	}
	if cfg.EtcRoot == "" {
		cfg.EtcRoot = "/"
	}
	if cfg.RunDir == "" {
		cfg.RunDir = "/run/libvirt"
	}
	if cfg.ProcDir == "" {
		cfg.ProcDir = "/proc"
	}
	if cfg.DNSPort == 0 {
		cfg.DNSPort = 53
	}
	if cfg.DNSTimeout == 0 {
		cfg.DNSTimeout = time.Second
	}
	return &Reader{cfg: cfg}, nil
}

// Current returns a Reader for the host as the controller sees it: the current network namespace,
// /proc/sys, files under "/". Close it when done.
func Current() (*Reader, error) {
	h, err := netlink.NewHandle()
	if err != nil {
		return nil, fmt.Errorf("open netlink: %w", err)
	}
	r, err := New(Config{Handle: h, Netns: netns.None(), Sysctl: ProcSysctl{}})
	if err != nil {
		h.Close()
		return nil, err
	}
	r.closers = append(r.closers, h.Close)
	return r, nil
}

// ForPID returns a Reader for the network namespace of process pid, reading libvirt's files through
// /proc/<pid>/root (its mount namespace) — how a libvirtd started inside a namespace is seen as a real
// host. etcRoot is where the ip_forward fix persists ("" means that same /proc/<pid>/root). Close it.
func ForPID(pid int, etcRoot string) (*Reader, error) {
	ns, err := netns.GetFromPid(pid)
	if err != nil {
		return nil, fmt.Errorf("open network namespace of pid %d: %w", pid, err)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		_ = ns.Close()
		return nil, fmt.Errorf("open netlink in namespace of pid %d: %w", pid, err)
	}
	root := filepath.Join("/proc", strconv.Itoa(pid), "root")
	if etcRoot == "" {
		etcRoot = root
	}
	r, err := New(Config{Handle: h, Netns: ns, Sysctl: NetnsSysctl{NS: ns}, FSRoot: root, EtcRoot: etcRoot})
	if err != nil {
		h.Close()
		_ = ns.Close()
		return nil, err
	}
	r.closers = append(r.closers, h.Close, func() { _ = ns.Close() })
	return r, nil
}

// Close releases what Current/ForPID opened (nothing for New: the caller owns cfg).
func (r *Reader) Close() error {
	for i := len(r.closers) - 1; i >= 0; i-- {
		r.closers[i]()
	}
	r.closers = nil
	return nil
}

// IPForward reads net.ipv4.ip_forward.
func (r *Reader) IPForward() (bool, error) {
	v, err := r.cfg.Sysctl.Read(IPForwardKey)
	if err != nil {
		return false, err
	}
	return v == "1", nil
}

// IPForwardFix returns the change ApplyIPForwardFix makes (print it first).
func (r *Reader) IPForwardFix() IPForwardFix {
	return IPForwardFix{
		Command:    "sysctl -w " + IPForwardKey + "=1",
		File:       IPForwardFile,
		Content:    ipForwardContent,
		Overridden: findOverrides(r.cfg.EtcRoot),
	}
}

// ApplyIPForwardFix sets ip_forward to 1 now, writes fix.File under the etc root, and reads the value
// back; it fails if the kernel still says 0.
func (r *Reader) ApplyIPForwardFix(fix IPForwardFix) error {
	if err := r.cfg.Sysctl.Write(IPForwardKey, "1"); err != nil {
		return fmt.Errorf("enable IPv4 forwarding: %w", err)
	}
	p := filepath.Join(r.cfg.EtcRoot, fix.File)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("persist IPv4 forwarding: %w", err)
	}
	if err := atomicfile.Write(p, []byte(fix.Content), 0o644); err != nil {
		return fmt.Errorf("persist IPv4 forwarding in %s: %w", fix.File, err)
	}
	on, err := r.IPForward()
	if err != nil {
		return fmt.Errorf("verify IPv4 forwarding: %w", err)
	}
	if !on {
		return fmt.Errorf("verify IPv4 forwarding: %s is still 0 after writing 1 (a container or policy forbids it?)", IPForwardKey)
	}
	return nil
}

// Host reads everything the snapshot's Host holds; dnsmasq is checked for each of nets that should
// have one. Problems with single parts are joined into the error while the rest is still returned.
// It satisfies controller/collect.HostNetSource.
func (r *Reader) Host(ctx context.Context, nets []snapshot.Network) (snapshot.Host, error) {
	var h snapshot.Host
	var errs []error
	bridges, err := r.Bridges()
	if err != nil {
		errs = append(errs, err)
	} else {
		h.Bridges = bridges
		h.Read = true
	}
	if fw, err := r.IPForward(); err != nil {
		errs = append(errs, err)
	} else {
		h.IPForward, h.IPForwardKnown = fw, true
	}
	if up, err := r.Uplink(); err != nil {
		errs = append(errs, err)
	} else {
		h.Uplink = up
	}
	if v6, err := r.IPv6DefaultRoute(); err != nil {
		errs = append(errs, err)
	} else {
		h.IPv6DefaultRoute = v6
	}
	if bnf, err := r.BridgeNetfilter(); err != nil {
		errs = append(errs, err)
	} else {
		h.BridgeNF = bnf
	}
	h.Dnsmasq = r.DnsmasqAll(ctx, nets)
	return h, errors.Join(errs...)
}
