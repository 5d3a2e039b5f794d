package apply

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/kvmnet/kvmnet/agent/config"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// Bounds of request values.
const (
	MinRollbackTimeout = 10 * time.Second
	MaxRollbackTimeout = 3600 * time.Second
	DefaultWaitIPv4    = 30 * time.Second
	MaxWaitIPv4        = 300 * time.Second
	MaxActions         = 32
)

// ErrInvalid is wrapped by every error about a malformed request (gRPC InvalidArgument).
var ErrInvalid = errors.New("invalid request")

// ErrOptedOut is wrapped when the agent's configuration forbids an action (gRPC PermissionDenied).
var ErrOptedOut = errors.New("not allowed by the agent configuration")

// ErrPrecondition is wrapped when the guest's state does not allow the plan: unknown MAC,
// NetworkManager not running, a checkpoint already pending (gRPC FailedPrecondition).
var ErrPrecondition = errors.New("precondition failed")

// Request is a validated ApplyRequest with defaults filled in.
type Request struct {
	// Actions in order, MACs normalised to lower case.
	Actions []Action
	// DryRun computes without changing.
	DryRun bool
	// RollbackTimeout after which unconfirmed changes roll back.
	RollbackTimeout time.Duration
}

// Action is one validated action; exactly one field is set.
type Action struct {
	// Ensure a kvm-dhcp profile.
	Ensure *EnsureAction
	// RemoveConflicts for a NIC.
	RemoveConflicts *RemoveConflictsAction
	// SetIPv6 disable (true) or enable (false).
	SetIPv6 *bool
	// ForceIPv4 for package managers (true) or undo (false).
	ForceIPv4 *bool
	// RestoreBackups of every managed file.
	RestoreBackups bool
}

// EnsureAction is a validated EnsureDHCPProfile.
type EnsureAction struct {
	// MAC, lower case.
	MAC string
	// IPv6Method: "auto", "ignore", "disabled" or "" (leave).
	IPv6Method string
	// WaitIPv4 after activation.
	WaitIPv4 time.Duration
}

// RemoveConflictsAction is a validated RemoveConflictingProfiles.
type RemoveConflictsAction struct {
	// MAC, lower case.
	MAC string
}

// NormalizeMAC validates a 6-byte MAC and returns it lower case with colons.
func NormalizeMAC(s string) (string, error) {
	hw, err := net.ParseMAC(strings.TrimSpace(s))
	if err != nil || len(hw) != 6 {
		return "", fmt.Errorf("%w: MAC address %q: want six hex bytes like 52:54:00:12:34:56", ErrInvalid, s)
	}
	return hw.String(), nil
}

// Validate checks req against bounds and the configuration's opt-outs and fills in defaults. An
// action that is opted out is refused with an error naming the config key.
func Validate(req *kvmnetv1.ApplyRequest, cfg config.Config) (Request, error) {
	out := Request{DryRun: req.GetDryRun()}
	switch s := req.GetRollbackTimeoutSeconds(); {
	case s == 0:
		out.RollbackTimeout = cfg.DefaultRollbackTimeout
		if out.RollbackTimeout == 0 {
			out.RollbackTimeout = 60 * time.Second
		}
	default:
		out.RollbackTimeout = time.Duration(s) * time.Second
	}
	if out.RollbackTimeout < MinRollbackTimeout || out.RollbackTimeout > MaxRollbackTimeout {
		return Request{}, fmt.Errorf("%w: rollback_timeout_seconds %d outside %d..%d", ErrInvalid,
			int(out.RollbackTimeout/time.Second), int(MinRollbackTimeout/time.Second), int(MaxRollbackTimeout/time.Second))
	}
	if len(req.GetActions()) == 0 {
		return Request{}, fmt.Errorf("%w: no actions", ErrInvalid)
	}
	if len(req.GetActions()) > MaxActions {
		return Request{}, fmt.Errorf("%w: %d actions, at most %d", ErrInvalid, len(req.GetActions()), MaxActions)
	}
	optOut := func(i int, what, key string) error {
		return fmt.Errorf("%w: action %d (%s) needs %s: true in /etc/kvmnet/agent.yaml", ErrOptedOut, i+1, what, key)
	}
	for i, a := range req.GetActions() {
		var act Action
		switch {
		case a.GetEnsureDhcpProfile() != nil:
			e := a.GetEnsureDhcpProfile()
			if !cfg.ManageProfiles {
				return Request{}, optOut(i, "ensure_dhcp_profile", "manage_profiles")
			}
			mac, err := NormalizeMAC(e.GetMac())
			if err != nil {
				return Request{}, fmt.Errorf("action %d (ensure_dhcp_profile): %w", i+1, err)
			}
			ea := &EnsureAction{MAC: mac, WaitIPv4: DefaultWaitIPv4}
			if w := e.GetWaitIpv4Seconds(); w != 0 {
				ea.WaitIPv4 = time.Duration(w) * time.Second
			}
			if ea.WaitIPv4 > MaxWaitIPv4 {
				return Request{}, fmt.Errorf("%w: action %d: wait_ipv4_seconds %d above %d", ErrInvalid, i+1, e.GetWaitIpv4Seconds(), int(MaxWaitIPv4/time.Second))
			}
			switch e.GetIpv6Method() {
			case kvmnetv1.IPv6Method_IPV6_METHOD_UNSPECIFIED:
			case kvmnetv1.IPv6Method_IPV6_METHOD_AUTO:
				ea.IPv6Method = "auto"
			case kvmnetv1.IPv6Method_IPV6_METHOD_IGNORE:
				ea.IPv6Method = "ignore"
			case kvmnetv1.IPv6Method_IPV6_METHOD_DISABLED:
				ea.IPv6Method = "disabled"
			default:
				return Request{}, fmt.Errorf("%w: action %d: unknown ipv6_method %d", ErrInvalid, i+1, e.GetIpv6Method())
			}
			act.Ensure = ea
		case a.GetRemoveConflictingProfiles() != nil:
			if !cfg.ManageProfiles {
				return Request{}, optOut(i, "remove_conflicting_profiles", "manage_profiles")
			}
			mac, err := NormalizeMAC(a.GetRemoveConflictingProfiles().GetMac())
			if err != nil {
				return Request{}, fmt.Errorf("action %d (remove_conflicting_profiles): %w", i+1, err)
			}
			act.RemoveConflicts = &RemoveConflictsAction{MAC: mac}
		case a.GetSetIpv6() != nil:
			if !cfg.ManageIPv6 {
				return Request{}, optOut(i, "set_ipv6", "manage_ipv6")
			}
			d := a.GetSetIpv6().GetDisable()
			act.SetIPv6 = &d
		case a.GetSetPackageManagerIpv4() != nil:
			if !cfg.ManagePackageManager {
				return Request{}, optOut(i, "set_package_manager_ipv4", "manage_package_manager")
			}
			f := a.GetSetPackageManagerIpv4().GetForce()
			act.ForceIPv4 = &f
		case a.GetRestoreBackups() != nil:
			act.RestoreBackups = true
		default:
			return Request{}, fmt.Errorf("%w: action %d is empty (unknown action type from a newer controller?)", ErrInvalid, i+1)
		}
		out.Actions = append(out.Actions, act)
	}
	return out, nil
}
