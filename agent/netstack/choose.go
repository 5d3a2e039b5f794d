package netstack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// Stack names used in claims, evidence and agent.yaml opt-outs.
const (
	NameNetworkManager = "networkmanager"
	NameNetplan        = "netplan"
	NameNetworkd       = "networkd"
	NameIfupdown       = "ifupdown"
)

// Claim is one stack that has configuration for a NIC.
type Claim struct {
	// Stack name (NameNetplan, ...).
	Stack string
	// Files holding that configuration (guest paths; empty for NetworkManager's own view).
	Files []string
	// Detail says what in them names the NIC ("id eth0", "stanza enp1s0 inet dhcp").
	Detail string
}

// String renders "netplan (/etc/netplan/50-cloud-init.yaml: id enp1s0)".
func (c Claim) String() string {
	var parts []string
	if len(c.Files) > 0 {
		parts = append(parts, strings.Join(c.Files, ","))
	}
	if c.Detail != "" {
		parts = append(parts, c.Detail)
	}
	if len(parts) == 0 {
		return c.Stack
	}
	return c.Stack + " (" + strings.Join(parts, ": ") + ")"
}

// Detection is what is known about one NIC when a backend is chosen for it.
type Detection struct {
	// NIC concerned.
	NIC NIC
	// Result is the stack decision GetState reports.
	Result Result
	// Claims lists the stacks whose configuration selects the NIC, in a fixed order.
	Claims []Claim
	// Installed stacks: netplan (YAML or the netplan binary), networkd (running this boot),
	// ifupdown (/etc/network/interfaces or ifup), NetworkManager (it answered).
	NetplanInstalled, NetworkdRunning, IfupdownInstalled, NMRunning bool
}

// Claimed reports whether stack claims the NIC.
func (d Detection) Claimed(stack string) bool {
	return slices.ContainsFunc(d.Claims, func(c Claim) bool { return c.Stack == stack })
}

// Unclaimed reports whether no stack claims the NIC (the hard-coded-name case: every definition
// names an interface the guest no longer has).
func (d Detection) Unclaimed() bool { return len(d.Claims) == 0 }

// Detect returns the Detection for the NIC with mac among nics (all the guest's NICs).
func (d *Detector) Detection(ctx context.Context, nics []NIC, mac string) (Detection, error) {
	ifaces := make([]*kvmnetv1.Interface, 0, len(nics))
	var in *kvmnetv1.Interface
	for _, n := range nics {
		it := &kvmnetv1.Interface{Name: n.Name, Mac: n.MAC, Driver: d.driver(n.Name)}
		ifaces = append(ifaces, it)
		if strings.EqualFold(n.MAC, mac) {
			in = it
		}
	}
	if in == nil {
		return Detection{}, fmt.Errorf("no interface with MAC %s", mac)
	}
	s := d.load()
	det := Detection{NIC: NIC{Name: in.Name, MAC: strings.ToLower(in.Mac)}}
	det.Result = d.decide(ctx, s, in, ifaces)
	det.NetplanInstalled = s.netplan.installed || fileExists(filepath.Join(d.root, "usr/sbin/netplan"))
	det.NetworkdRunning = s.networkd.running
	det.IfupdownInstalled = s.ifupdown.installed
	if d.nm != nil {
		ok, _, err := d.nm.ManagesDevice(ctx, in.Name)
		det.NMRunning = err == nil
		if ok {
			det.Claims = append(det.Claims, Claim{Stack: NameNetworkManager, Detail: "NetworkManager manages " + in.Name})
		}
	}
	if e := s.netplan.match(in.Name, in.Mac, in.Driver); e != nil {
		st := NameNetplan
		if strings.EqualFold(e.renderer, "NetworkManager") {
			st = NameNetworkManager
		}
		det.addClaim(Claim{Stack: st, Files: []string{e.file}, Detail: "id " + e.id})
	}
	if s.networkd.running {
		if f := s.networkd.match(in.Name, in.Mac, in.Driver); f != "" && !netplanGenerated(f) {
			det.addClaim(Claim{Stack: NameNetworkd, Files: []string{f}, Detail: "[Match] selects " + in.Name})
		}
	}
	if st, ok := s.ifupdown.stanzas[in.Name]; ok && in.Name != "lo" {
		det.addClaim(Claim{Stack: NameIfupdown, Files: []string{st.file}, Detail: "stanza iface " + in.Name + " " + strings.Join(st.families, ",")})
	}
	return det, errors.Join(s.errs...)
}

// addClaim merges claims of the same stack (netplan handing the NIC to NetworkManager is one).
func (det *Detection) addClaim(c Claim) {
	for i := range det.Claims {
		if det.Claims[i].Stack == c.Stack {
			det.Claims[i].Files = append(det.Claims[i].Files, c.Files...)
			if c.Detail != "" {
				det.Claims[i].Detail = strings.TrimPrefix(det.Claims[i].Detail+"; "+c.Detail, "; ")
			}
			return
		}
	}
	det.Claims = append(det.Claims, c)
}

// netplanGenerated reports whether a .network file is netplan's output (its claim is netplan's).
func netplanGenerated(guest string) bool {
	return strings.HasPrefix(filepath.Base(guest), "10-netplan-")
}

func (d *Detector) driver(name string) string {
	l, err := os.Readlink(filepath.Join(d.root, "sys/class/net", name, "device/driver"))
	if err != nil {
		return ""
	}
	return filepath.Base(l)
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir()
}

// ErrConflict is wrapped when two stacks claim one NIC: nothing is written.
var ErrConflict = errors.New("two network stacks claim the interface")

// ErrOptedOut is wrapped when the backend a NIC needs is switched off in agent.yaml.
var ErrOptedOut = errors.New("network stack backend switched off")

// Choice is the backend chosen for a NIC.
type Choice struct {
	// Stack chosen (NameNetworkManager, NameNetplan, ...).
	Stack string
	// Backend chosen. For NetworkManager it is the NetworkManager backend (nil when the Chooser
	// has none): agent/apply plans its profiles from NetworkManager's state and makes them under
	// its checkpoint (Checkpointer).
	Backend Backend
	// Evidence as key=value words: what claimed the NIC and why this backend.
	Evidence string
}

// Chooser picks the backend for a NIC from its Detection.
type Chooser struct {
	backends []Backend
	nm       Backend // the NetworkManager backend among backends (nil: none)
	disabled map[string]bool
}

// NewChooser returns a Chooser over backends (asked in order). The NetworkManager backend among
// them (Name NameNetworkManager) is not asked with the others: it gets a NIC NetworkManager claims,
// or that no file-based stack would configure. disabled names stacks switched off in agent.yaml
// (NameNetplan, ...): a NIC that needs one gets an error wrapping ErrOptedOut.
func NewChooser(backends []Backend, disabled []string) *Chooser {
	c := &Chooser{disabled: map[string]bool{}}
	for _, b := range backends {
		if b.Name() == NameNetworkManager {
			c.nm = b
			continue
		}
		c.backends = append(c.backends, b)
	}
	for _, d := range disabled {
		c.disabled[d] = true
	}
	return c
}

// Choose returns the backend for det's NIC. When two stacks claim the NIC it returns an error
// wrapping ErrConflict that names both with their files, and nothing must be written.
func (c *Chooser) Choose(det Detection) (Choice, error) {
	var ev evidence
	ev.add("nic", det.NIC.Name)
	for _, cl := range det.Claims {
		ev.add("claim_"+cl.Stack, strings.Join(append(slices.Clone(cl.Files), cl.Detail), " "))
	}
	if len(det.Claims) > 1 {
		var names []string
		for _, cl := range det.Claims {
			names = append(names, cl.String())
		}
		return Choice{Evidence: ev.String()}, fmt.Errorf("%w: %s is configured by both %s; kvmnet changed nothing: remove the definition of one of them (or disable that stack) and retry",
			ErrConflict, det.NIC.Name, strings.Join(names, " and "))
	}
	var chosen []Backend
	for _, b := range c.backends {
		if ok, why := b.IsManaging(det); ok {
			chosen = append(chosen, b)
			ev.raw(why)
		}
	}
	nmClaims := det.Claimed(NameNetworkManager)
	switch {
	case len(chosen) > 1:
		var names []string
		for _, b := range chosen {
			names = append(names, b.Name())
		}
		return Choice{Evidence: ev.String()}, fmt.Errorf("%w: %s could be configured by %s; kvmnet changed nothing", ErrConflict, det.NIC.Name, strings.Join(names, " and "))
	case len(chosen) == 1 && !nmClaims:
		b := chosen[0]
		ev.add("stack", b.Name())
		if c.disabled[b.Name()] {
			return Choice{Stack: b.Name(), Evidence: ev.String()}, fmt.Errorf("%w: %s is configured by %s, and manage_%s is false in /etc/kvmnet/agent.yaml; set it to true (or configure the NIC by hand)",
				ErrOptedOut, det.NIC.Name, b.Name(), b.Name())
		}
		return Choice{Stack: b.Name(), Backend: b, Evidence: ev.String()}, nil
	}
	// NetworkManager: it claims the NIC, or nothing else would (the behaviour before file
	// backends existed, including its errors when NetworkManager is not there).
	if c.nm != nil {
		_, why := c.nm.IsManaging(det)
		ev.raw(why)
	}
	ev.add("stack", NameNetworkManager)
	return Choice{Stack: NameNetworkManager, Backend: c.nm, Evidence: ev.String()}, nil
}

// Selector detects a NIC's stacks and chooses its backend: agent/apply's Stacks.
type Selector struct {
	d *Detector
	c *Chooser
}

// NewSelector returns a Selector over a Detector and a Chooser.
func NewSelector(d *Detector, c *Chooser) *Selector { return &Selector{d: d, c: c} }

// Choose detects the stacks of the NIC with mac among nics and chooses its backend. Unreadable
// configuration of some stack does not stop the choice (it is made from what could be read); a
// conflict or opt-out is returned as the error.
func (s *Selector) Choose(ctx context.Context, nics []NIC, mac string) (Choice, error) {
	det, err := s.d.Detection(ctx, nics, mac)
	if det.NIC.Name == "" {
		return Choice{}, err
	}
	return s.c.Choose(det)
}

// Backend returns the backend named name, nil when there is none.
func (s *Selector) Backend(name string) Backend {
	if name == NameNetworkManager && s.c.nm != nil {
		return s.c.nm
	}
	for _, b := range s.c.backends {
		if b.Name() == name {
			return b
		}
	}
	return nil
}
