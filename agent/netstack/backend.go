package netstack

import (
	"context"
	"fmt"
	"io/fs"
	"strings"

	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// Runner runs one command given as an argument vector and returns what it wrote (stdout and
// stderr together, bounded). A non-nil error means it could not start or exited non-zero; the
// output is returned then too, so the caller can show it verbatim.
type Runner interface {
	Run(ctx context.Context, argv ...string) (output []byte, err error)
}

// NIC is a network interface of the guest.
type NIC struct {
	// Name as the kernel reports it, e.g. "enp1s0".
	Name string
	// MAC, lower case with colons.
	MAC string
}

// Target is what a backend is asked to make true: the NIC gets IPv4 by DHCP from its own stack.
type Target struct {
	// NIC to configure.
	NIC NIC
	// IPv6 is "auto", "ignore", "disabled" or "" (the stack's default).
	IPv6 string
	// All lists every NIC of the guest: a user definition is stale when it matches none of them.
	All []NIC
	// Pending holds the planned content of files earlier actions of the same request change (a
	// nil value: removed), so a second NIC's plan builds on the first one's.
	Pending map[string][]byte
}

// FileChange is one file a backend writes. Files are written through agent/managedfile (header, backup,
// state, snapshot for rollback), never by the backend itself.
type FileChange struct {
	// Path as the guest sees it.
	Path string
	// Body without kvmnet's header line (the file store adds it).
	Body []byte
	// Mode of the file; 0 keeps the existing file's mode (0644 for new files).
	Mode fs.FileMode
	// Why, for the plan's summary ("kvmnet's DHCP definition for enp1s0").
	Why string
	// Neutralises is set when the file replaces a user's file with a managed copy lacking a
	// definition bound to a missing interface (the original is backed up and restored on rollback).
	Neutralises string
}

// Command is one command a backend runs.
type Command struct {
	// Argv, e.g. ["netplan", "generate"].
	Argv []string
	// Tolerate a failure (it only gathers evidence, or undoes something that may be gone).
	Tolerate bool
}

// String renders the command for plans and logs.
func (c Command) String() string { return strings.Join(c.Argv, " ") }

// Plan is what a backend will do for a Target. It is computed without changing anything, so a dry
// run shows it.
type Plan struct {
	// Stack the plan configures.
	Stack kvmnetv1.NetworkStack
	// Backend name ("netplan", "networkd", "ifupdown").
	Backend string
	// NIC concerned.
	NIC NIC
	// Files to write, in order.
	Files []FileChange
	// Apply runs after the files are written (e.g. netplan generate, netplan apply).
	Apply []Command
	// Undo runs on rollback before the files are restored (e.g. ifdown while the stanza exists).
	Undo []Command
	// Redo runs on rollback after the files are restored (e.g. netplan apply of the old files).
	Redo []Command
	// Activate is NetworkManager's part: the profile its Apply activates (nil for file-based
	// stacks).
	Activate *Activation `json:"activate,omitempty"`
	// Evidence as key=value words (stack, file, stanza).
	Evidence []string
	// Notes explain things the plan leaves alone.
	Notes []string
}

// Backend is "the software that configures this NIC" (the shape of GoogleCloudPlatform
// guest-agent's network/manager Service): asked first whether it manages a NIC, then for a plan,
// which it applies and, when the host does not confirm, rolls back. Backends never write files
// themselves: the caller writes Plan.Files through its file store before Apply and restores them
// between Undo and Redo.
type Backend interface {
	// Name is the backend's short name, also its agent.yaml opt-out key suffix.
	Name() string
	// Stack is the network stack it configures.
	Stack() kvmnetv1.NetworkStack
	// IsManaging reports whether this backend should configure the NIC, judged from the detection
	// (the stack decision and what is installed), with the evidence for the answer.
	IsManaging(d Detection) (bool, string)
	// Plan computes the change for t from the guest's current files. It changes nothing.
	Plan(t Target) (*Plan, error)
	// Apply runs the plan's commands once its files are written. The returned words are evidence
	// (a DHCP client's output, for example); the error carries a failing command's output verbatim.
	Apply(ctx context.Context, r Runner, p *Plan) ([]string, error)
	// Rollback runs Undo (before=true, files still kvmnet's) or Redo (before=false, files restored).
	Rollback(ctx context.Context, r Runner, p *Plan, before bool) ([]string, error)
}

// runAll runs cmds in order and stops at the first failure that is not tolerated. Each command's
// output becomes one evidence word; a failure's error holds the output verbatim.
func runAll(ctx context.Context, r Runner, cmds []Command) ([]string, error) {
	var ev []string
	for _, c := range cmds {
		out, err := r.Run(ctx, c.Argv...)
		text := strings.TrimSpace(string(out))
		if err != nil {
			if c.Tolerate {
				ev = append(ev, "cmd="+quote(c.String())+" failed="+quote(err.Error()))
				continue
			}
			msg := fmt.Sprintf("%s: %v", c.String(), err)
			if text != "" {
				msg += "\n" + text
			}
			return ev, fmt.Errorf("%s", msg)
		}
		w := "cmd=" + quote(c.String())
		if text != "" {
			w += " output=" + quote(bound(text, 2048))
		}
		ev = append(ev, w)
	}
	return ev, nil
}

// bound cuts s to at most n bytes (command output is evidence, not a log).
func bound(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// macFileName is a MAC without colons, for file names ("525400aa0001").
func macFileName(mac string) string { return strings.ReplaceAll(strings.ToLower(mac), ":", "") }

// existingNames returns the names of all.
func existingNames(all []NIC) map[string]bool {
	m := map[string]bool{}
	for _, n := range all {
		m[n.Name] = true
	}
	return m
}
