package apply

import (
	"bytes"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"time"

	"github.com/kvmnet/kvmnet/agent/managedfile"
	"github.com/kvmnet/kvmnet/agent/nm"
	"github.com/kvmnet/kvmnet/agent/pkgconf"
	"github.com/kvmnet/kvmnet/agent/sysctl"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// Paths and keys kvmnet manages.
// The contents and names are agent/sysctl's and agent/pkgconf's, so reports and changes agree.
const (
	SysctlFile = sysctl.PersistentFile
	AptFile    = pkgconf.AptFile
	DnfFile    = pkgconf.DnfConf
)

// SysctlKeys are the live settings SetIPv6 changes.
var SysctlKeys = []string{"net.ipv6.conf.all.disable_ipv6", "net.ipv6.conf.default.disable_ipv6"}

// NIC is a network interface as the kernel reports it.
type NIC struct {
	// Name, e.g. "enp1s0".
	Name string
	// MAC, lower case.
	MAC string
}

// ManagedFile is a file agent/managedfile records as kvmnet's.
type ManagedFile struct {
	// Path as the guest sees it.
	Path string
	// Existed is true when the file had content before kvmnet changed it (restore, not remove).
	Existed bool
}

// Inputs is the current state a plan is computed from.
type Inputs struct {
	// NICs from netlink.
	NICs []NIC
	// NM is NetworkManager's state; ignored when NMErr is set.
	NM nm.State
	// NMErr says why NetworkManager could not be read (not running, hung).
	NMErr error
	// Files holds the current content of the files a plan may touch; absent key = no such file.
	Files map[string][]byte
	// Managed lists kvmnet's files.
	Managed []ManagedFile
	// AptInstalled and DnfInstalled say whether /etc/apt and /etc/dnf exist.
	AptInstalled, DnfInstalled bool
	// Sysctl holds the current values of SysctlKeys.
	Sysctl map[string]string
	// Stacks holds the network stack chosen for the NIC of each Ensure/RemoveConflicts action, by
	// MAC; a NIC without an entry is NetworkManager's (as before file-based stacks existed).
	Stacks map[string]StackChoice
	// NICIPv4 holds each NIC's IPv4 addresses (file-based stacks: "already configured" needs them).
	NICIPv4 map[string][]string
	// ReadFile reads a file a file-based stack plans to change (through the file store); nil:
	// only Files is known.
	ReadFile func(path string) ([]byte, error)
}

// OpKind is what a Step does.
type OpKind int

// Step kinds.
const (
	OpAddProfile OpKind = iota + 1
	OpUpdateProfile
	OpDeleteProfile
	OpActivate
	OpWriteFile
	OpRemoveFile
	OpRestoreFile
	OpSetSysctl
	// OpStackApply runs a file-based stack's commands (netplan, networkd, ifupdown) and waits for
	// IPv4; its files are written by the OpWriteFile steps before it.
	OpStackApply
)

// Step is one change of a plan.
type Step struct {
	// Kind of operation.
	Kind OpKind
	// Change reported to the caller.
	Change *kvmnetv1.Change
	// Spec of kvmnet's profile (add, update, activate).
	Spec nm.DHCPSpec
	// Profile changed or deleted (update, delete).
	Profile nm.Profile
	// Device to activate on, and how long to wait for IPv4.
	Device nm.Device
	Wait   time.Duration
	// Fresh is true when the activated profile is created by the step before: if NetworkManager
	// already autoconnected it, the step waits for that activation instead of restarting it.
	Fresh bool
	// Path, Body and Mode (0: keep the existing file's) of a file operation.
	Path string
	Body []byte
	Mode fs.FileMode
	// Stack is the backend and plan of an OpStackApply.
	Stack *stackRecord
	// Key, Value and Old of a sysctl.
	Key, Value, Old string
}

// NM reports whether the step talks to NetworkManager.
func (s Step) NM() bool { return s.Kind <= OpActivate }

// Plan is the ordered list of steps for a request.
type Plan struct {
	// Steps in execution order; empty when nothing needs to change.
	Steps []Step
	// Notes explain actions that needed nothing ("kvm-dhcp-enp1s0 already active with 10.77.0.115/24").
	Notes []string
}

// NeedsNM reports whether any step changes NetworkManager.
func (p *Plan) NeedsNM() bool { return slices.ContainsFunc(p.Steps, Step.NM) }

// Changes returns the steps' changes.
func (p *Plan) Changes() []*kvmnetv1.Change {
	out := make([]*kvmnetv1.Change, 0, len(p.Steps))
	for _, s := range p.Steps {
		out = append(out, s.Change)
	}
	return out
}

// MaxWait is the longest the steps may wait (for IPv4 addresses), the rest of their time aside.
func (p *Plan) MaxWait() time.Duration {
	var d time.Duration
	for _, s := range p.Steps {
		d += s.Wait
	}
	return d
}

// FilePaths returns the files the plan touches (for a snapshot).
func (p *Plan) FilePaths() []string {
	var out []string
	for _, s := range p.Steps {
		if s.Path != "" && !slices.Contains(out, s.Path) {
			out = append(out, s.Path)
		}
	}
	return out
}

// planner carries the working state while actions are planned one after the other, so that later
// actions see the effect of earlier ones.
type planner struct {
	in       Inputs
	profiles []nm.Profile
	files    map[string][]byte
	managed  map[string]ManagedFile
	sysctl   map[string]string
	plan     *Plan
}

// Compute returns the plan for req given the current state. It is pure. An unknown MAC, or an NM
// action while NetworkManager cannot be reached, is an error wrapping ErrPrecondition, and then
// nothing is planned.
func Compute(req Request, in Inputs) (*Plan, error) {
	p := &planner{in: in, profiles: slices.Clone(in.NM.Profiles), files: map[string][]byte{},
		managed: map[string]ManagedFile{}, sysctl: map[string]string{}, plan: &Plan{}}
	for k, v := range in.Files {
		p.files[k] = v
	}
	for _, m := range in.Managed {
		p.managed[m.Path] = m
	}
	for k, v := range in.Sysctl {
		p.sysctl[k] = v
	}
	for i, a := range req.Actions {
		var err error
		switch {
		case a.Ensure != nil:
			err = p.ensure(*a.Ensure)
		case a.RemoveConflicts != nil:
			err = p.removeConflicts(*a.RemoveConflicts)
		case a.SetIPv6 != nil:
			p.setIPv6(*a.SetIPv6)
		case a.ForceIPv4 != nil:
			p.forceIPv4(*a.ForceIPv4)
		case a.RestoreBackups:
			p.restoreBackups()
		}
		if err != nil {
			return nil, fmt.Errorf("action %d: %w", i+1, err)
		}
	}
	return p.plan, nil
}

func (p *planner) nic(mac string) (NIC, error) {
	var seen []string
	for _, n := range p.in.NICs {
		if strings.EqualFold(n.MAC, mac) {
			return n, nil
		}
		seen = append(seen, n.Name+"="+n.MAC)
	}
	return NIC{}, fmt.Errorf("%w: no interface with MAC %s in the guest (it has: %s); check the MAC in the domain XML (virsh domiflist); nothing was changed",
		ErrPrecondition, mac, strings.Join(seen, " "))
}

func (p *planner) needNM() error {
	if p.in.NMErr != nil {
		return fmt.Errorf("%w: %v; nothing was changed", ErrPrecondition, p.in.NMErr)
	}
	return nil
}

func (p *planner) ensure(a EnsureAction) error {
	nic, err := p.nic(a.MAC)
	if err != nil {
		return err
	}
	if c, err := p.fileStack(nic.MAC); err != nil {
		return err
	} else if c != nil {
		return p.ensureStack(c, nic, a)
	}
	if err := p.needNM(); err != nil {
		return err
	}
	dev, ok := p.in.NM.DeviceByMAC(a.MAC)
	if !ok {
		return fmt.Errorf("%w: NetworkManager has no device for %s (%s); nothing was changed", ErrPrecondition, nic.Name, a.MAC)
	}
	if !dev.Managed || !dev.Ethernet() {
		return fmt.Errorf("%w: NetworkManager does not manage %s as an ethernet device (type %s, managed=%t, state %s); remove it from unmanaged-devices or use the guest's own network stack; nothing was changed",
			ErrPrecondition, nic.Name, dev.TypeName(), dev.Managed, dev.State)
	}
	spec := nm.DHCPSpec{InterfaceName: nic.Name, MAC: nic.MAC, IPv6Method: a.IPv6Method}
	idx := slices.IndexFunc(p.profiles, func(pr nm.Profile) bool { return pr.ID == spec.ID() })
	activate := true
	switch {
	case idx >= 0 && !p.profiles[idx].ManagedByKvmnet:
		// Adopting it would keep every other setting someone else gave it (permissions, 802-1x,
		// ignore-auto-dns) under kvmnet's name. RemoveConflictingProfiles replaces it, with the
		// user's consent to the plan.
		pr := p.profiles[idx]
		return fmt.Errorf("%w: profile %q (uuid %s) has the name kvmnet uses but not its marker (managed_by_kvmnet=false: no %s in its user data), so someone else made it; kvmnet adopts only its own profiles: rename it (nmcli connection modify %s connection.id NEW-NAME) or delete it, or let the fix replace it (kvmnetctl guests fix sends RemoveConflictingProfiles first); nothing was changed",
			ErrPrecondition, pr.ID, pr.UUID, nm.ManagedKey, pr.UUID)
	case idx >= 0 && p.profiles[idx].Type != nm.EthernetType:
		old := p.profiles[idx]
		p.deleteProfile(old, fmt.Sprintf("has type %s, kvmnet needs %s", old.Type, nm.EthernetType))
		p.addProfile(spec)
	case idx < 0:
		p.addProfile(spec)
	default:
		cur := p.profiles[idx]
		if diff := spec.Diff(cur); len(diff) > 0 {
			var lines []string
			for _, f := range diff {
				lines = append(lines, f.String())
			}
			p.plan.Steps = append(p.plan.Steps, Step{Kind: OpUpdateProfile, Spec: spec, Profile: cur, Change: &kvmnetv1.Change{
				Kind: "profile", Target: spec.ID(),
				Summary: fmt.Sprintf("update profile %s (uuid %s): %d setting(s)", spec.ID(), cur.UUID, len(diff)),
				Diff:    strings.Join(lines, "\n") + "\n",
			}})
			p.profiles[idx] = withSpec(cur, spec)
		} else if cur.Active && cur.ActiveDevice == nic.Name && len(dev.IPv4) > 0 {
			activate = false
			p.plan.Notes = append(p.plan.Notes, fmt.Sprintf("profile %s already active on %s with %s; nothing to change",
				spec.ID(), nic.Name, strings.Join(dev.IPv4, ",")))
		}
	}
	if activate {
		fresh := len(p.plan.Steps) > 0 && p.plan.Steps[len(p.plan.Steps)-1].Kind == OpAddProfile && p.plan.Steps[len(p.plan.Steps)-1].Spec.ID() == spec.ID()
		p.plan.Steps = append(p.plan.Steps, Step{Kind: OpActivate, Spec: spec, Device: dev, Wait: a.WaitIPv4, Fresh: fresh, Change: &kvmnetv1.Change{
			Kind: "profile", Target: spec.ID(),
			Summary: fmt.Sprintf("activate %s on %s (%s) and wait up to %s for an IPv4 address", spec.ID(), nic.Name, nic.MAC, a.WaitIPv4),
		}})
		for i := range p.profiles {
			if p.profiles[i].ActiveDevice == nic.Name {
				p.profiles[i].Active, p.profiles[i].ActiveDevice = false, ""
			}
			if p.profiles[i].ID == spec.ID() {
				p.profiles[i].Active, p.profiles[i].ActiveDevice = true, nic.Name
			}
		}
	}
	return nil
}

func withSpec(p nm.Profile, s nm.DHCPSpec) nm.Profile {
	p.ID, p.Type, p.InterfaceName, p.Autoconnect, p.IPv4Method, p.ManagedByKvmnet = s.ID(), nm.EthernetType, s.InterfaceName, true, "auto", true
	p.IPv4Addresses, p.IPv4Gateway, p.IPv4DNS = nil, "", nil
	if p.MAC != "" && !strings.EqualFold(p.MAC, s.MAC) {
		p.MAC = ""
	}
	if s.IPv6Method != "" {
		p.IPv6Method = s.IPv6Method
	}
	return p
}

func (p *planner) addProfile(spec nm.DHCPSpec) {
	var lines []string
	for _, f := range spec.Diff(nm.Profile{}) {
		lines = append(lines, fmt.Sprintf("+%s: %s", f.Key, f.New))
	}
	v6 := spec.IPv6Method
	if v6 == "" {
		v6 = "NetworkManager default"
	}
	p.plan.Steps = append(p.plan.Steps, Step{Kind: OpAddProfile, Spec: spec, Change: &kvmnetv1.Change{
		Kind: "profile", Target: spec.ID(),
		Summary: fmt.Sprintf("create profile %s (ethernet, interface-name %s, ipv4 auto, ipv6 %s, autoconnect) for %s", spec.ID(), spec.InterfaceName, v6, spec.MAC),
		Diff:    strings.Join(lines, "\n") + "\n",
	}})
	p.profiles = append(p.profiles, withSpec(nm.Profile{}, spec))
}

func (p *planner) deleteProfile(pr nm.Profile, why string) {
	p.plan.Steps = append(p.plan.Steps, Step{Kind: OpDeleteProfile, Profile: pr, Change: &kvmnetv1.Change{
		Kind: "profile", Target: pr.ID,
		Summary: fmt.Sprintf("delete profile %q (uuid %s): %s", pr.ID, pr.UUID, why),
		Diff:    "-" + pr.String() + "\n",
	}})
	p.profiles = slices.DeleteFunc(p.profiles, func(x nm.Profile) bool { return x.UUID == pr.UUID && x.Path == pr.Path })
}

func (p *planner) removeConflicts(a RemoveConflictsAction) error {
	nic, err := p.nic(a.MAC)
	if err != nil {
		return err
	}
	if c, err := p.fileStack(nic.MAC); err != nil {
		return err
	} else if c != nil {
		// The backend's plan (the Ensure action) neutralises definitions bound to missing interfaces.
		p.plan.Notes = append(p.plan.Notes, fmt.Sprintf("%s is configured by %s: definitions bound to missing interfaces are neutralised by its DHCP plan", nic.Name, c.Backend.Name()))
		return nil
	}
	if err := p.needNM(); err != nil {
		return err
	}
	keep := nm.ProfilePrefix + nic.Name
	kept := false
	for _, pr := range slices.Clone(p.profiles) {
		if pr.Type != nm.EthernetType {
			continue
		}
		if pr.ID == keep && !kept && pr.ManagedByKvmnet {
			kept = true
			continue
		}
		var why string
		switch {
		case pr.ID == keep && !pr.ManagedByKvmnet:
			why = fmt.Sprintf("has the name kvmnet uses for %s but not kvmnet's marker (managed_by_kvmnet=false): made by someone else, replaced by kvmnet's own", nic.Name)
		case pr.BoundTo(nic.Name, nic.MAC):
			why = fmt.Sprintf("bound to %s (interface-name=%q mac=%q), which gets %s", nic.Name, pr.InterfaceName, pr.MAC, keep)
		case pr.Active && pr.ActiveDevice == nic.Name:
			why = fmt.Sprintf("active on %s, which gets %s", nic.Name, keep)
		case pr.BoundToMissingInterface:
			why = fmt.Sprintf("bound to an interface that does not exist (interface-name=%q mac=%q)", pr.InterfaceName, pr.MAC)
		default:
			continue
		}
		p.deleteProfile(pr, why)
	}
	return nil
}

func (p *planner) writeFile(path string, body []byte, what string) {
	want := managedfile.WithHeader(body)
	cur, exists := p.files[path]
	if exists && bytes.Equal(cur, want) {
		p.plan.Notes = append(p.plan.Notes, path+" already "+what)
		return
	}
	verb := "create"
	if exists {
		verb = "change"
	}
	p.plan.Steps = append(p.plan.Steps, Step{Kind: OpWriteFile, Path: path, Body: body, Change: &kvmnetv1.Change{
		Kind: "file", Target: path, Summary: fmt.Sprintf("%s %s: %s", verb, path, what),
		Diff: managedfile.LineDiff(string(cur), string(want)),
	}})
	p.files[path] = want
	if _, ok := p.managed[path]; !ok {
		p.managed[path] = ManagedFile{Path: path, Existed: exists}
	}
}

// undoFile removes kvmnet's file or restores the original it replaced.
func (p *planner) undoFile(path, what string) {
	m, ok := p.managed[path]
	if !ok {
		if cur, exists := p.files[path]; exists && managedfile.HasHeader(cur) {
			ok = true // written by kvmnet, record lost: still kvmnet's to remove
		} else {
			p.plan.Notes = append(p.plan.Notes, path+" is not kvmnet's; left alone ("+what+")")
			return
		}
	}
	cur := p.files[path]
	if m.Existed {
		p.plan.Steps = append(p.plan.Steps, Step{Kind: OpRestoreFile, Path: path, Change: &kvmnetv1.Change{
			Kind: "file", Target: path, Summary: fmt.Sprintf("restore %s from its backup: %s", path, what),
			Diff: fmt.Sprintf("(restore the content from before kvmnet's first change; current:)\n%s", managedfile.LineDiff(string(cur), "")),
		}})
	} else {
		p.plan.Steps = append(p.plan.Steps, Step{Kind: OpRemoveFile, Path: path, Change: &kvmnetv1.Change{
			Kind: "file", Target: path, Summary: fmt.Sprintf("remove %s: %s", path, what),
			Diff: managedfile.LineDiff(string(cur), ""),
		}})
	}
	delete(p.files, path)
	delete(p.managed, path)
}

func (p *planner) setSysctl(key, value string) {
	old := p.sysctl[key]
	if old == value {
		return
	}
	p.plan.Steps = append(p.plan.Steps, Step{Kind: OpSetSysctl, Key: key, Value: value, Old: old, Change: &kvmnetv1.Change{
		Kind: "sysctl", Target: key, Summary: fmt.Sprintf("set %s = %s (live)", key, value),
		Diff: fmt.Sprintf("-%s = %s\n+%s = %s\n", key, old, key, value),
	}})
	p.sysctl[key] = value
}

func (p *planner) setIPv6(disable bool) {
	if disable {
		p.writeFile(SysctlFile, sysctl.RenderDisable(), "disables IPv6 at boot")
		for _, k := range SysctlKeys {
			p.setSysctl(k, "1")
		}
		return
	}
	if _, ok := p.files[SysctlFile]; ok {
		p.undoFile(SysctlFile, "IPv6 stays enabled at boot")
	}
	for _, k := range SysctlKeys {
		p.setSysctl(k, "0")
	}
}

func (p *planner) forceIPv4(force bool) {
	if p.in.AptInstalled {
		if force {
			p.writeFile(AptFile, pkgconf.RenderApt(), "apt uses IPv4 only (Acquire::ForceIPv4)")
		} else if _, ok := p.files[AptFile]; ok {
			p.undoFile(AptFile, "apt may use IPv6 again")
		}
	}
	if p.in.DnfInstalled {
		cur, exists := p.files[DnfFile]
		if force {
			p.writeFile(DnfFile, pkgconf.RenderDnf(managedfile.StripHeader(cur), true), "dnf uses IPv4 only (ip_resolve=4)")
		} else if exists {
			if _, ok := p.managed[DnfFile]; ok {
				p.undoFile(DnfFile, "dnf may use IPv6 again")
			}
		}
	}
	if !p.in.AptInstalled && !p.in.DnfInstalled {
		p.plan.Notes = append(p.plan.Notes, "neither apt nor dnf is installed; nothing to force")
	}
}

func (p *planner) restoreBackups() {
	paths := make([]string, 0, len(p.managed))
	for path := range p.managed {
		paths = append(paths, path)
	}
	slices.Sort(paths)
	for _, path := range paths {
		p.undoFile(path, "restore backups")
	}
	if len(paths) == 0 {
		p.plan.Notes = append(p.plan.Notes, "no files managed by kvmnet; nothing to restore")
	}
}
