package netstack

import (
	"context"
	"errors"
	"fmt"
	"strings"

	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// NMProbe answers whether NetworkManager manages a device. agent/nm implements it over D-Bus.
type NMProbe interface {
	// ManagesDevice reports whether NetworkManager manages the device named ifname (its device
	// state is above "unmanaged"), with key=value evidence such as "nm_device_state=activated".
	// An error means NetworkManager could not be asked (not running, bus missing).
	ManagesDevice(ctx context.Context, ifname string) (managed bool, evidence string, err error)
}

// Options configures a Detector.
type Options struct {
	// Root is the directory etc/, run/, lib/ and sys/ are read under ("/" in production). Required.
	Root string
	// NM answers for NetworkManager; nil means NetworkManager is not asked ("nm=not_asked").
	NM NMProbe
}

// Detector decides the network stack of interfaces.
type Detector struct {
	root string
	nm   NMProbe
}

// Result is the stack decision for one interface.
type Result struct {
	// Stack that configures the interface.
	Stack kvmnetv1.NetworkStack
	// Detail is the evidence and, for stacks kvmnet does not manage, what would be needed.
	Detail string
}

// New returns a Detector.
func New(opts Options) (*Detector, error) {
	if opts.Root == "" {
		return nil, errors.New("stack: root directory is required (\"/\" in production)")
	}
	return &Detector{root: opts.Root, nm: opts.NM}, nil
}

// sources is everything read from the filesystem once per Annotate call.
type sources struct {
	ifupdown ifupdownConfig
	netplan  netplanConfig
	networkd networkdConfig
	errs     []error
}

func (d *Detector) load() *sources {
	s := &sources{}
	var err error
	if s.ifupdown, err = readIfupdown(d.root); err != nil {
		s.errs = append(s.errs, err)
	}
	if s.netplan, err = readNetplan(d.root); err != nil {
		s.errs = append(s.errs, err)
	}
	if s.networkd, err = readNetworkd(d.root); err != nil {
		s.errs = append(s.errs, err)
	}
	return s
}

// Annotate sets Stack and StackDetail on every interface of ifaces. Unreadable or unparsable
// configuration is returned as an error; the decisions are still made from what could be read.
func (d *Detector) Annotate(ctx context.Context, ifaces []*kvmnetv1.Interface) error {
	s := d.load()
	for _, in := range ifaces {
		r := d.decide(ctx, s, in, ifaces)
		in.Stack, in.StackDetail = r.Stack, r.Detail
	}
	return errors.Join(s.errs...)
}

// Detect returns the decision for the interface named name among ifaces (all the guest's
// interfaces: stale configuration is recognised by naming interfaces that do not exist).
func (d *Detector) Detect(ctx context.Context, ifaces []*kvmnetv1.Interface, name string) (Result, error) {
	for _, in := range ifaces {
		if in.GetName() == name {
			s := d.load()
			return d.decide(ctx, s, in, ifaces), errors.Join(s.errs...)
		}
	}
	return Result{}, fmt.Errorf("no interface named %q", name)
}

type evidence []string

func (e *evidence) add(k, v string) { *e = append(*e, k+"="+quote(v)) }
func (e *evidence) raw(s string) {
	if s != "" {
		*e = append(*e, s)
	}
}
func (e evidence) String() string { return strings.Join(e, " ") }

// quote keeps a value one word: values with spaces, quotes or newlines are single-quoted with
// newlines written as \n.
func quote(v string) string {
	if v != "" && !strings.ContainsAny(v, " \t\n'\"\\") {
		return v
	}
	v = strings.ReplaceAll(v, `\`, `\\`)
	v = strings.ReplaceAll(v, "\n", `\n`)
	v = strings.ReplaceAll(v, "'", `\'`)
	return "'" + v + "'"
}

func (d *Detector) decide(ctx context.Context, s *sources, in *kvmnetv1.Interface, all []*kvmnetv1.Interface) Result {
	name, mac := in.GetName(), in.GetMac()
	var ev evidence
	existing := map[string]bool{}
	for _, o := range all {
		existing[o.GetName()] = true
	}

	// 1. NetworkManager, when it says it manages the device.
	nmManaged := false
	if d.nm == nil {
		ev.add("nm", "not_asked")
	} else if ok, nmEv, err := d.nm.ManagesDevice(ctx, name); err != nil {
		ev.add("nm", "unavailable")
		ev.add("nm_error", err.Error())
	} else {
		nmManaged = ok
		ev.add("nm_manages", yesno(ok))
		ev.raw(nmEv)
	}
	np := s.netplan.match(name, mac, in.GetDriver())
	if np != nil {
		ev.add("netplan_file", np.file)
		ev.add("netplan_id", np.id)
		ev.add("netplan_renderer", np.renderer)
	}
	if nmManaged {
		return Result{kvmnetv1.NetworkStack_NETWORK_STACK_NETWORK_MANAGER, ev.String()}
	}

	// 2. networkd's own runtime view.
	if st, ok := s.networkd.runtime(d.root, name); ok {
		ev.add("networkd_admin_state", st.adminState)
		if st.networkFile != "" {
			ev.add("networkd_network_file", st.networkFile)
		}
		if st.adminState != "unmanaged" && st.adminState != "" {
			if netplanGenerated(st.networkFile) {
				return Result{kvmnetv1.NetworkStack_NETWORK_STACK_NETPLAN, ev.String()}
			}
			return Result{kvmnetv1.NetworkStack_NETWORK_STACK_NETWORKD, ev.String()}
		}
	}

	// 3. netplan hands the NIC to a renderer.
	if np != nil {
		if strings.EqualFold(np.renderer, "NetworkManager") {
			return Result{kvmnetv1.NetworkStack_NETWORK_STACK_NETWORK_MANAGER, ev.String()}
		}
		return Result{kvmnetv1.NetworkStack_NETWORK_STACK_NETPLAN, ev.String()}
	}

	// 4. A networkd .network file that matches.
	if f := s.networkd.match(name, mac, in.GetDriver()); f != "" {
		ev.add("networkd_network_file", f)
		if s.networkd.running {
			return Result{kvmnetv1.NetworkStack_NETWORK_STACK_NETWORKD, ev.String()}
		}
		ev.add("networkd_running", "no")
	}

	// 5. ifupdown.
	if st, ok := s.ifupdown.stanzas[name]; ok {
		ev.add("ifupdown_stanza", name+" "+strings.Join(st.families, ","))
		ev.add("ifupdown_file", st.file)
		ev.add("ifupdown_auto", yesno(st.auto))
		return Result{kvmnetv1.NetworkStack_NETWORK_STACK_IFUPDOWN, ev.String()}
	}

	// 6. Nothing configures it: say what each installed stack would need.
	if s.ifupdown.installed {
		if stale := s.ifupdown.stale(existing); len(stale) > 0 {
			ev.add("ifupdown_stale", strings.Join(stale, ","))
		}
		ev.add("ifupdown_stanza_missing", name)
		ev.add("need", fmt.Sprintf("auto %s\niface %s inet dhcp", name, name))
	}
	if s.netplan.installed {
		if stale := s.netplan.stale(existing); len(stale) > 0 {
			ev.add("netplan_stale", strings.Join(stale, ","))
		}
		ev.add("netplan_missing", name)
		ev.add("need", fmt.Sprintf("network: {version: 2, ethernets: {%s: {match: {macaddress: %q}, set-name: %s, dhcp4: true}}}", name, mac, name))
	}
	if s.networkd.running {
		ev.add("networkd_network_missing", name)
		ev.add("need", fmt.Sprintf("/etc/systemd/network/20-%s.network: [Match]\nMACAddress=%s\n[Network]\nDHCP=ipv4", name, mac))
	}
	return Result{kvmnetv1.NetworkStack_NETWORK_STACK_NONE, ev.String()}
}

func yesno(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
