package firewall

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"

	"github.com/kvmnet/kvmnet/controller/runner"
)

// Command is one host change as the exact argument vector that runs it.
type Command struct {
	// Argv is the change, e.g. ["ufw", "route", "allow", "in", "on", "virbr0", "out", "on", "eth0"].
	Argv []string `json:"argv"`
	// Check, when set, is run first: success means the change is already there and Argv is skipped
	// (idempotence, e.g. `iptables -C ...`).
	Check []string `json:"check,omitempty"`
	// Why says what the change is for.
	Why string `json:"why"`
}

// String renders the command for display (never for a shell).
func (c Command) String() string { return runner.Quote(c.Argv) }

// Fix is a host-side repair: the commands, in order, and how the change is made to last.
type Fix struct {
	// Code is the finding it repairs (ufw_routed_blocked, forward_policy_drop).
	Code string `json:"code"`
	// Summary is one line for the user.
	Summary string `json:"summary"`
	// Commands in the order they run.
	Commands []Command `json:"commands"`
	// Persist tells whether and how the change survives a reboot.
	Persist string `json:"persist"`
}

// Step is what happened to one command of a Fix.
type Step struct {
	// Command of the Fix this step ran (or found already applied).
	Command Command `json:"command"`
	// Ran is true when Argv ran.
	Ran bool `json:"ran"`
	// AlreadyPresent is true when Check said the change was already there.
	AlreadyPresent bool `json:"already_present,omitempty"`
	// Output is what the command printed.
	Output string `json:"output,omitempty"`
}

var ifaceRe = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.:@-]{0,14}$`)

func checkIface(what, name string) error {
	if !ifaceRe.MatchString(name) {
		return fmt.Errorf("%s interface name %q is not a valid Linux interface name", what, name)
	}
	return nil
}

// UFWRoutedFix returns the repair for ufw_routed_blocked: allow routed traffic from the bridge to
// the uplink (`ufw route allow in on BRIDGE out on UPLINK`) and the guests' DHCP/DNS to the host
// (`ufw allow in on BRIDGE`). It never disables UFW and opens nothing to the outside: both rules
// match only packets that arrive on the guests' bridge.
func UFWRoutedFix(bridge, uplink string) (Fix, error) {
	if err := checkIface("bridge", bridge); err != nil {
		return Fix{}, err
	}
	if err := checkIface("uplink", uplink); err != nil {
		return Fix{}, err
	}
	return Fix{
		Code:    "ufw_routed_blocked",
		Summary: fmt.Sprintf("let UFW route guest traffic from %s out of %s, and accept guests' DHCP/DNS on %s", bridge, uplink, bridge),
		Commands: []Command{
			{Argv: []string{"ufw", "route", "allow", "in", "on", bridge, "out", "on", uplink},
				Why: "UFW's routed policy drops forwarded guest traffic; allow it from the bridge to the uplink only"},
			{Argv: []string{"ufw", "allow", "in", "on", bridge},
				Why: "UFW's incoming policy drops guests' DHCP and DNS to the host on the bridge"},
		},
		Persist: "ufw saves these rules in /etc/ufw/user.rules; they survive reboots and `ufw reload`",
	}, nil
}

// DockerForwardFix returns the repair for forward_policy_drop set by Docker: ACCEPT rules for the
// libvirt subnet in DOCKER-USER (the chain Docker leaves to the administrator), for new egress from
// the bridge to the uplink and for the return path. It never changes Docker's FORWARD policy.
// iptables is the command that holds Docker's rules ("iptables" or "iptables-legacy"; "" means
// "iptables"). Each rule is checked with -C first, so applying twice adds nothing.
func DockerForwardFix(bridge, uplink, subnet, iptables string) (Fix, error) {
	if err := checkIface("bridge", bridge); err != nil {
		return Fix{}, err
	}
	if err := checkIface("uplink", uplink); err != nil {
		return Fix{}, err
	}
	p, err := netip.ParsePrefix(subnet)
	if err != nil || !p.Addr().Is4() {
		return Fix{}, fmt.Errorf("subnet %q is not an IPv4 CIDR (e.g. 192.168.122.0/24)", subnet)
	}
	subnet = p.Masked().String()
	if iptables == "" {
		iptables = "iptables"
	}
	if iptables != "iptables" && iptables != "iptables-legacy" && iptables != "iptables-nft" {
		return Fix{}, fmt.Errorf("iptables command %q: want iptables, iptables-nft or iptables-legacy", iptables)
	}
	egress := []string{"DOCKER-USER", "-i", bridge, "-o", uplink, "-s", subnet, "-j", "ACCEPT"}
	ret := []string{"DOCKER-USER", "-o", bridge, "-d", subnet, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"}
	cmd := func(op string, rule []string) []string { return append([]string{iptables, op}, rule...) }
	return Fix{
		Code:    "forward_policy_drop",
		Summary: fmt.Sprintf("accept %s guest traffic through %s in DOCKER-USER (Docker's FORWARD policy stays DROP)", subnet, uplink),
		Commands: []Command{
			{Argv: cmd("-I", ret), Check: cmd("-C", ret),
				Why: "replies to guest connections must come back through Docker's FORWARD DROP"},
			{Argv: cmd("-I", egress), Check: cmd("-C", egress),
				Why: "new guest connections from " + bridge + " to " + uplink + " must pass Docker's FORWARD DROP"},
		},
		Persist: "Docker keeps DOCKER-USER across its own restarts, but these rules are lost at reboot: persist " +
			"them with iptables-persistent (`netfilter-persistent save`), or a systemd unit ordered " +
			"After=docker.service that runs the same commands (or a libvirt network hook, /etc/libvirt/hooks/network)",
	}, nil
}

// Fixer applies Fixes through a runner.
type Fixer struct {
	run runner.Runner
}

// NewFixer returns a Fixer that runs commands through r.
func NewFixer(r runner.Runner) *Fixer { return &Fixer{run: r} }

// Apply runs the fix's commands in order. With dryRun it runs nothing at all and returns the steps
// it would take. It stops at the first failing command; the error names it and its stderr.
func (f *Fixer) Apply(ctx context.Context, fix Fix, dryRun bool) ([]Step, error) {
	steps := make([]Step, 0, len(fix.Commands))
	for _, c := range fix.Commands {
		st := Step{Command: c}
		if dryRun {
			steps = append(steps, st)
			continue
		}
		if len(c.Check) > 0 {
			_, err := f.run.Run(ctx, c.Check[0], c.Check[1:]...)
			if err == nil {
				st.AlreadyPresent = true
				steps = append(steps, st)
				continue
			}
			if runner.ExitCode(err) != 1 {
				return steps, fmt.Errorf("%s: check failed: %w", fix.Code, err)
			}
		}
		out, err := f.run.Run(ctx, c.Argv[0], c.Argv[1:]...)
		st.Ran, st.Output = true, string(out)
		steps = append(steps, st)
		if err != nil {
			return steps, fmt.Errorf("%s: %w", fix.Code, err)
		}
	}
	return steps, nil
}

// DockerIptables returns the iptables command that holds Docker's DOCKER-USER chain in this state
// ("iptables-legacy" when only the legacy tables have it, else "iptables").
func (s *State) DockerIptables() string {
	if s.IPTablesNFT.Table("filter").Chain("DOCKER-USER") == nil && s.IPTablesLegacy.Table("filter").Chain("DOCKER-USER") != nil {
		return "iptables-legacy"
	}
	return "iptables"
}
