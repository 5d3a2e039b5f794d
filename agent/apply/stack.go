package apply

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/kvmnet/kvmnet/agent/netstack"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// Stacks chooses the network stack backend of a NIC (agent/netstack's *Selector).
type Stacks interface {
	// Choose returns the backend for the NIC with mac among nics; an error wrapping
	// netstack.ErrConflict or netstack.ErrOptedOut means nothing may be written for it.
	Choose(ctx context.Context, nics []netstack.NIC, mac string) (netstack.Choice, error)
	// Backend returns the backend named name (a restored rollback record names its backends).
	Backend(name string) netstack.Backend
}

// AddrReader reports an interface's IPv4 addresses (CIDR), to wait for a lease a file-based stack
// obtains.
type AddrReader interface {
	IPv4(ifname string) ([]string, error)
}

// StackChoice is the backend chosen for one NIC before planning, or why none may be used.
type StackChoice struct {
	// Choice of agent/netstack.
	Choice netstack.Choice
	// Err: two stacks claim the NIC, or its stack is opted out.
	Err error
}

// stackRecord is what a rollback needs of a file-based stack's change: the backend and its plan
// (plain data: the on-disk rollback record carries it as RecordStack, the backend by name).
type stackRecord struct {
	backend netstack.Backend
	plan    *netstack.Plan
}

// RecordStack is a file-based stack's change in the on-disk rollback Record.
type RecordStack struct {
	// Backend name ("netplan", "networkd", "ifupdown").
	Backend string `json:"backend"`
	// Plan the backend applied; its Undo/Redo commands run on restore.
	Plan *netstack.Plan `json:"plan"`
}

// stackRecords returns the plan's stack steps.
func (p *Plan) stackRecords() []*stackRecord {
	var out []*stackRecord
	for _, s := range p.Steps {
		if s.Kind == OpStackApply && s.Stack != nil {
			out = append(out, s.Stack)
		}
	}
	return out
}

// chooseStacks asks Stacks for the NIC of every Ensure and RemoveConflicts action.
func (a *Applier) chooseStacks(ctx context.Context, r Request, in *Inputs) {
	if a.o.Stacks == nil {
		return
	}
	var nics []netstack.NIC
	for _, n := range in.NICs {
		nics = append(nics, netstack.NIC{Name: n.Name, MAC: strings.ToLower(n.MAC)})
	}
	in.Stacks = map[string]StackChoice{}
	for _, act := range r.Actions {
		mac := ""
		switch {
		case act.Ensure != nil:
			mac = act.Ensure.MAC
		case act.RemoveConflicts != nil:
			mac = act.RemoveConflicts.MAC
		default:
			continue
		}
		if _, done := in.Stacks[mac]; done || !slices.ContainsFunc(nics, func(n netstack.NIC) bool { return n.MAC == mac }) {
			continue
		}
		c, err := a.o.Stacks.Choose(ctx, nics, mac)
		in.Stacks[mac] = StackChoice{Choice: c, Err: err}
		a.log.Info("stack chosen", "mac", mac, "stack", c.Stack, "evidence", c.Evidence, "error", err)
	}
	if a.o.Files != nil {
		in.ReadFile = a.o.Files.Read
	}
}

// fileStack returns the file-based backend chosen for mac, nil for NetworkManager, or the error
// that forbids any change to the NIC.
func (p *planner) fileStack(mac string) (*netstack.Choice, error) {
	sc, ok := p.in.Stacks[mac]
	if !ok {
		return nil, nil
	}
	if errors.Is(sc.Err, netstack.ErrOptedOut) {
		return nil, fmt.Errorf("%w: %v", ErrOptedOut, sc.Err)
	}
	if sc.Err != nil {
		return nil, fmt.Errorf("%w: %v (%s)", ErrPrecondition, sc.Err, sc.Choice.Evidence)
	}
	if !fileBased(sc.Choice) {
		return nil, nil
	}
	return &sc.Choice, nil
}

// fileBased reports whether c is a file-based stack's backend (not NetworkManager's, whose
// profiles the planner makes from NetworkManager's state).
func fileBased(c netstack.Choice) bool {
	return c.Backend != nil && c.Backend.Name() != netstack.NameNetworkManager
}

// ensureStack plans a file-based stack's change for nic: its files through the file store (header,
// backup, state, snapshot), then one step running the backend and waiting for IPv4.
func (p *planner) ensureStack(c *netstack.Choice, nic NIC, a EnsureAction) error {
	if !ifnameRe.MatchString(nic.Name) {
		// The name goes into file names and command arguments.
		return fmt.Errorf("%w: interface name %q is not one kvmnet writes stack files for; nothing was changed", ErrPrecondition, nic.Name)
	}
	t := netstack.Target{NIC: netstack.NIC{Name: nic.Name, MAC: strings.ToLower(nic.MAC)}, IPv6: a.IPv6Method, Pending: map[string][]byte{}}
	for _, n := range p.in.NICs {
		t.All = append(t.All, netstack.NIC{Name: n.Name, MAC: strings.ToLower(n.MAC)})
	}
	for _, path := range p.plan.FilePaths() {
		t.Pending[path] = p.files[path]
	}
	sp, err := c.Backend.Plan(t)
	if err != nil {
		if errors.Is(err, netstack.ErrConflict) {
			return fmt.Errorf("%w: %v", ErrPrecondition, err)
		}
		return fmt.Errorf("%w: %s backend: %v; nothing was changed", ErrPrecondition, c.Backend.Name(), err)
	}
	changed := false
	for _, f := range sp.Files {
		if p.writeFileMode(f.Path, f.Body, f.Mode, f.Why) {
			changed = true
		}
	}
	if !changed && len(p.in.NICIPv4[nic.Name]) > 0 {
		p.plan.Notes = append(p.plan.Notes, fmt.Sprintf("%s already configures %s (%s) with %s; nothing to change",
			c.Backend.Name(), nic.Name, strings.Join(sp.Evidence, " "), strings.Join(p.in.NICIPv4[nic.Name], ",")))
		return nil
	}
	var cmds []string
	for _, cmd := range sp.Apply {
		cmds = append(cmds, cmd.String())
	}
	ev := []string{c.Evidence}
	for _, w := range sp.Evidence {
		if !slices.Contains(strings.Fields(c.Evidence), w) {
			ev = append(ev, w)
		}
	}
	diff := "evidence: " + strings.Join(ev, " ") + "\n"
	for _, n := range sp.Notes {
		diff += "note: " + n + "\n"
	}
	p.plan.Steps = append(p.plan.Steps, Step{Kind: OpStackApply, Stack: &stackRecord{backend: c.Backend, plan: sp}, Wait: a.WaitIPv4,
		Change: &kvmnetv1.Change{
			Kind: "stack", Target: c.Backend.Name() + ":" + nic.Name,
			Summary: fmt.Sprintf("%s: run %s, then wait up to %s for an IPv4 address on %s (%s)", c.Backend.Name(), strings.Join(cmds, "; "), a.WaitIPv4, nic.Name, nic.MAC),
			Diff:    diff,
		}})
	return nil
}

// writeFileMode is writeFile with the file's mode (netplan wants 0600) and the current content read
// through the file store when the inputs did not carry it. It reports whether a step was added.
func (p *planner) writeFileMode(path string, body []byte, mode fs.FileMode, what string) bool {
	if _, ok := p.files[path]; !ok && p.in.ReadFile != nil {
		if b, err := p.in.ReadFile(path); err == nil {
			p.files[path] = b
		}
	}
	n := len(p.plan.Steps)
	p.writeFile(path, body, what)
	if len(p.plan.Steps) == n {
		return false
	}
	p.plan.Steps[n].Mode = mode
	return true
}

// execStack runs a file-based stack's commands (its files are written by the steps before) and
// waits for IPv4 on the NIC. p.stacks holds the step from the start of the Apply, so a rollback
// re-runs the backend's commands whatever state the Apply stopped in.
func (a *Applier) execStack(ctx context.Context, p *pending, s Step) error {
	if a.o.Runner == nil {
		return errors.New("no command runner configured")
	}
	ev, err := s.Stack.backend.Apply(ctx, a.o.Runner, s.Stack.plan)
	if len(ev) > 0 {
		s.Change.Diff += strings.Join(ev, "\n") + "\n"
	}
	if err != nil {
		return err
	}
	ifname := s.Stack.plan.NIC.Name
	start := time.Now()
	addrs, err := a.waitIPv4(ctx, ifname, s.Wait)
	if err != nil {
		return err
	}
	a.log.Info("ipv4 obtained", "interface", ifname, "stack", s.Stack.backend.Name(), "addresses", strings.Join(addrs, ","), "after", time.Since(start))
	s.Change.Summary += fmt.Sprintf(": got %s in %s", strings.Join(addrs, ","), time.Since(start).Round(time.Millisecond))
	return nil
}

// waitIPv4 polls the NIC's addresses until it has a routable IPv4 one (not 169.254/16).
func (a *Applier) waitIPv4(ctx context.Context, ifname string, wait time.Duration) ([]string, error) {
	if a.o.Addrs == nil {
		return nil, errors.New("no address reader configured")
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		addrs, err := a.o.Addrs.IPv4(ifname)
		addrs = slices.DeleteFunc(addrs, func(s string) bool { return strings.HasPrefix(s, "169.254.") })
		if err == nil && len(addrs) > 0 {
			return addrs, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no IPv4 address on %s after %s (last error: %v)", ifname, wait, err)
		case <-tick.C:
		}
	}
}

// rollbackStacks runs the backends' rollback commands of p, newest first: before=true before the
// files are restored, false after.
func (a *Applier) rollbackStacks(ctx context.Context, p *pending, before bool) ([]string, error) {
	var out []string
	var errs []error
	for i := len(p.stacks) - 1; i >= 0; i-- {
		r := p.stacks[i]
		if a.o.Runner == nil {
			break
		}
		if r.backend == nil && r.plan != nil && a.o.Stacks != nil {
			r.backend = a.o.Stacks.Backend(r.plan.Backend)
		}
		if r.backend == nil || r.plan == nil {
			errs = append(errs, fmt.Errorf("rollback record names stack backend %q, which this agent does not have: run its tools by hand", planName(r.plan)))
			continue
		}
		ev, err := r.backend.Rollback(ctx, a.o.Runner, r.plan, before)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s rollback: %w", r.backend.Name(), err))
		}
		if len(ev) > 0 {
			out = append(out, r.backend.Name()+": "+strings.Join(ev, "; "))
		}
	}
	return out, errors.Join(errs...)
}

var ifnameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$`)

// NetAddrs reads IPv4 addresses with the standard library (the agent's own network namespace).
type NetAddrs struct{}

// IPv4 implements AddrReader.
func (NetAddrs) IPv4(ifname string) ([]string, error) {
	ifc, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, err
	}
	addrs, err := ifc.Addrs()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, ad := range addrs {
		if ipn, ok := ad.(*net.IPNet); ok && ipn.IP.To4() != nil {
			out = append(out, ipn.String())
		}
	}
	return out, nil
}

func planName(p *netstack.Plan) string {
	if p == nil {
		return ""
	}
	return p.Backend
}

// nmOnly returns r without the Ensure actions for NICs a file-based stack configures.
func nmOnly(r Request, stacks map[string]StackChoice) Request {
	out := r
	out.Actions = nil
	for _, act := range r.Actions {
		if act.Ensure != nil && fileBased(stacks[act.Ensure.MAC].Choice) {
			continue
		}
		out.Actions = append(out.Actions, act)
	}
	return out
}
