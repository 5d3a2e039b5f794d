package qga

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Interface is one guest interface as guest-network-get-interfaces reports it, sanitised.
type Interface struct {
	// Name in the guest, e.g. "enp1s0".
	Name string `json:"name"`
	// MAC address, lower case ("" when the guest sent none or an invalid one).
	MAC string `json:"mac,omitempty"`
	// IPv4 addresses in CIDR form.
	IPv4 []string `json:"ipv4,omitempty"`
	// IPv6 addresses in CIDR form.
	IPv6 []string `json:"ipv6,omitempty"`
}

// OSInfo is guest-get-osinfo's answer, sanitised.
type OSInfo struct {
	// ID is os-release's ID, e.g. "debian", "rhel".
	ID string `json:"id,omitempty"`
	// Name is os-release's NAME.
	Name string `json:"name,omitempty"`
	// PrettyName is os-release's PRETTY_NAME.
	PrettyName string `json:"pretty_name,omitempty"`
	// VersionID is os-release's VERSION_ID.
	VersionID string `json:"version_id,omitempty"`
	// KernelRelease is uname -r.
	KernelRelease string `json:"kernel_release,omitempty"`
	// Machine is uname -m, e.g. "x86_64", "aarch64".
	Machine string `json:"machine,omitempty"`
}

// ErrReplyTooLarge is returned for a reply over MaxReplyBytes.
var ErrReplyTooLarge = errors.New("qemu-guest-agent reply too large")

// unwrap returns the "return" member of a QMP reply; an "error" member becomes an *AgentError.
func unwrap(reply string) (json.RawMessage, error) {
	if len(reply) > MaxReplyBytes {
		return nil, fmt.Errorf("%w (%d bytes, limit %d)", ErrReplyTooLarge, len(reply), MaxReplyBytes)
	}
	var r struct {
		Return json.RawMessage `json:"return"`
		Error  *struct {
			Class string `json:"class"`
			Desc  string `json:"desc"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(reply), &r); err != nil {
		return nil, fmt.Errorf("parse qemu-guest-agent reply: %w", err)
	}
	if r.Error != nil {
		return nil, &AgentError{Class: Text(r.Error.Class, MaxTextLen), Desc: Text(r.Error.Desc, MaxTextLen)}
	}
	if len(r.Return) == 0 {
		return nil, errors.New("parse qemu-guest-agent reply: no \"return\" member")
	}
	return r.Return, nil
}

// ParseInterfaces parses a guest-network-get-interfaces reply. It keeps at most MaxInterfaces
// interfaces and MaxAddresses addresses of each; invalid addresses and MACs are dropped, names are
// sanitised. The loopback interface is skipped.
func ParseInterfaces(reply string) ([]Interface, error) {
	raw, err := unwrap(reply)
	if err != nil {
		return nil, err
	}
	var in []struct {
		Name  string `json:"name"`
		HW    string `json:"hardware-address"`
		Addrs []struct {
			Type   string `json:"ip-address-type"`
			Addr   string `json:"ip-address"`
			Prefix *int   `json:"prefix"`
		} `json:"ip-addresses"`
	}
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, fmt.Errorf("parse guest-network-get-interfaces: %w", err)
	}
	out := []Interface{}
	for _, it := range in {
		if len(out) == MaxInterfaces {
			break
		}
		if it.Name == "lo" {
			continue
		}
		o := Interface{Name: ifName(it.Name), MAC: macAddr(it.HW)}
		n := 0
		for _, a := range it.Addrs {
			if n == MaxAddresses {
				break
			}
			prefix := -1
			if a.Prefix != nil {
				prefix = *a.Prefix
			}
			switch a.Type {
			case "ipv4":
				if p, ok := prefixOf(a.Addr, prefix, false); ok {
					o.IPv4 = append(o.IPv4, p)
					n++
				}
			case "ipv6":
				if p, ok := prefixOf(a.Addr, prefix, true); ok {
					o.IPv6 = append(o.IPv6, p)
					n++
				}
			}
		}
		out = append(out, o)
	}
	return out, nil
}

// ParseOSInfo parses a guest-get-osinfo reply.
func ParseOSInfo(reply string) (OSInfo, error) {
	raw, err := unwrap(reply)
	if err != nil {
		return OSInfo{}, err
	}
	var in struct {
		ID            string `json:"id"`
		Name          string `json:"name"`
		PrettyName    string `json:"pretty-name"`
		VersionID     string `json:"version-id"`
		KernelRelease string `json:"kernel-release"`
		Machine       string `json:"machine"`
	}
	if err := json.Unmarshal(raw, &in); err != nil {
		return OSInfo{}, fmt.Errorf("parse guest-get-osinfo: %w", err)
	}
	return OSInfo{
		ID: Text(in.ID, MaxTextLen), Name: Text(in.Name, MaxTextLen), PrettyName: Text(in.PrettyName, MaxTextLen),
		VersionID: Text(in.VersionID, MaxTextLen), KernelRelease: Text(in.KernelRelease, MaxTextLen),
		Machine: Text(in.Machine, MaxTextLen),
	}, nil
}

// ParseHostName parses a guest-get-host-name reply.
func ParseHostName(reply string) (string, error) {
	raw, err := unwrap(reply)
	if err != nil {
		return "", err
	}
	var in struct {
		HostName string `json:"host-name"`
	}
	if err := json.Unmarshal(raw, &in); err != nil {
		return "", fmt.Errorf("parse guest-get-host-name: %w", err)
	}
	return Text(in.HostName, MaxTextLen), nil
}

// Info is guest-info's answer: the agent's version and which commands it accepts.
type Info struct {
	// Version of qemu-ga.
	Version string `json:"version"`
	// Enabled maps each known command to whether this instance accepts it (false: blocked by
	// --block-rpcs / not in --allow-rpcs).
	Enabled map[string]bool `json:"enabled"`
}

// maxCommands caps guest-info's command list (qemu-ga 7.2 has about 50).
const maxCommands = 512

// ParseInfo parses a guest-info reply.
func ParseInfo(reply string) (Info, error) {
	raw, err := unwrap(reply)
	if err != nil {
		return Info{}, err
	}
	var in struct {
		Version  string `json:"version"`
		Commands []struct {
			Name    string `json:"name"`
			Enabled bool   `json:"enabled"`
		} `json:"supported_commands"`
	}
	if err := json.Unmarshal(raw, &in); err != nil {
		return Info{}, fmt.Errorf("parse guest-info: %w", err)
	}
	out := Info{Version: Text(in.Version, MaxTextLen), Enabled: map[string]bool{}}
	for i, c := range in.Commands {
		if i == maxCommands {
			break
		}
		out.Enabled[Text(c.Name, MaxTextLen)] = c.Enabled
	}
	return out, nil
}

// ExecStatus is guest-exec-status's answer.
type ExecStatus struct {
	// Exited is true once the process ended.
	Exited bool `json:"exited"`
	// ExitCode when it exited normally.
	ExitCode int `json:"exitcode"`
	// Signal that ended it, 0 when none.
	Signal int `json:"signal,omitempty"`
	// Stdout captured (at most MaxOutputBytes, raw bytes: sanitise before printing).
	Stdout []byte `json:"-"`
	// Stderr captured (at most MaxOutputBytes).
	Stderr []byte `json:"-"`
}

// ParseExecStatus parses a guest-exec-status reply.
func ParseExecStatus(reply string) (ExecStatus, error) {
	raw, err := unwrap(reply)
	if err != nil {
		return ExecStatus{}, err
	}
	var in struct {
		Exited   bool   `json:"exited"`
		ExitCode int    `json:"exitcode"`
		Signal   int    `json:"signal"`
		Out      string `json:"out-data"`
		Err      string `json:"err-data"`
	}
	if err := json.Unmarshal(raw, &in); err != nil {
		return ExecStatus{}, fmt.Errorf("parse guest-exec-status: %w", err)
	}
	st := ExecStatus{Exited: in.Exited, ExitCode: in.ExitCode, Signal: in.Signal}
	if st.Stdout, err = decodeOutput(in.Out); err != nil {
		return ExecStatus{}, fmt.Errorf("parse guest-exec-status out-data: %w", err)
	}
	if st.Stderr, err = decodeOutput(in.Err); err != nil {
		return ExecStatus{}, fmt.Errorf("parse guest-exec-status err-data: %w", err)
	}
	return st, nil
}

func decodeOutput(s string) ([]byte, error) {
	if max := base64.StdEncoding.EncodedLen(MaxOutputBytes); len(s) > max {
		s = s[:max]
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// parseInt parses a reply whose "return" is a number (guest-file-open's handle, guest-exec's pid is
// an object: see parsePID).
func parseInt(reply, what string) (int64, error) {
	raw, err := unwrap(reply)
	if err != nil {
		return 0, err
	}
	var n int64
	if err := json.Unmarshal(raw, &n); err != nil {
		return 0, fmt.Errorf("parse %s: %w", what, err)
	}
	return n, nil
}

func parsePID(reply string) (int64, error) {
	raw, err := unwrap(reply)
	if err != nil {
		return 0, err
	}
	var in struct {
		PID *int64 `json:"pid"`
	}
	if err := json.Unmarshal(raw, &in); err != nil || in.PID == nil {
		return 0, fmt.Errorf("parse guest-exec reply: no pid (%v)", err)
	}
	return *in.PID, nil
}

// parseWritten parses guest-file-write's {"count": N, "eof": false}.
func parseWritten(reply string) (int, error) {
	raw, err := unwrap(reply)
	if err != nil {
		return 0, err
	}
	var in struct {
		Count int `json:"count"`
	}
	if err := json.Unmarshal(raw, &in); err != nil {
		return 0, fmt.Errorf("parse guest-file-write reply: %w", err)
	}
	return in.Count, nil
}

// FirstLine returns the first line of guest output, sanitised: for version strings and checksums.
func FirstLine(b []byte) string {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	return Text(strings.TrimSpace(string(b)), MaxTextLen)
}
