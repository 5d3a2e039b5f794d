package diagnose

import (
	"fmt"
	"strings"

	"github.com/kvmnet/kvmnet/controller/snapshot"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// QGAReport is the "qga" object of a guest's agent: what qemu-guest-agent said when the kvmnet agent
// did not answer.
type QGAReport struct {
	// Answered is true when qemu-guest-agent listed the guest's interfaces.
	Answered bool `json:"answered"`
	// Error says why it gave no view.
	Error string `json:"error,omitempty"`
	// OS is the guest's PRETTY_NAME.
	OS string `json:"os,omitempty"`
	// Arch is uname -m.
	Arch string `json:"arch,omitempty"`
	// Interfaces are "NAME=MAC" of the guest's interfaces.
	Interfaces []string `json:"interfaces,omitempty"`
	// LatencyMS is how long the interface query took.
	LatencyMS float64 `json:"latency_ms,omitempty"`
}

// AgentQGA is the GuestReport.AgentColumn text of a guest seen through qemu-guest-agent only.
const AgentQGA = "qga"

// InstallAgentCommand is the command that installs kvmnet-agent into a guest through qemu-guest-agent.
func InstallAgentCommand(domain string) string { return "kvmnetctl guests install-agent " + domain }

// fromQGA gives a guest without a reachable kvmnet agent a partial state built from qemu-guest-agent's
// interfaces, so the per-NIC rules (no IPv4, wrong subnet, lease mismatch, NIC not seen) judge the
// guest's own view. Rules that need what only the kvmnet agent knows (routes, NM profiles, resolver,
// checks, IPv6 sysctls) stay off: viaQGA.
func (gc *guestCtx) fromQGA() {
	q := gc.g.QGA
	if gc.st != nil || q == nil || !q.Answered {
		return
	}
	st := &kvmnetv1.GuestState{Hostname: q.HostName}
	if q.OS != nil {
		st.Os = &kvmnetv1.OSInfo{Id: q.OS.ID, VersionId: q.OS.VersionID, PrettyName: q.OS.PrettyName, Kernel: q.OS.KernelRelease}
	}
	for _, it := range q.Interfaces {
		st.Interfaces = append(st.Interfaces, &kvmnetv1.Interface{Name: it.Name, Mac: it.MAC, Ipv4: it.IPv4, Ipv6: it.IPv6})
	}
	gc.st, gc.viaQGA = st, true
}

func qgaReport(q *snapshot.QGAView) *QGAReport {
	if q == nil {
		return nil
	}
	r := &QGAReport{Answered: q.Answered, Error: q.Error}
	if q.OS != nil {
		r.OS, r.Arch = q.OS.PrettyName, q.OS.Machine
	}
	for _, it := range q.Interfaces {
		r.Interfaces = append(r.Interfaces, it.Name+"="+orNone(it.MAC))
	}
	if q.Latency > 0 {
		r.LatencyMS = float64(q.Latency.Microseconds()) / 1000
	}
	return r
}

// kvmnetAgentMissing reports a guest whose kvmnet agent does not answer while qemu-guest-agent does,
// with the command that installs it; it returns false when that is not the case (agentPresence then
// names the missing channel or the silent agent).
func (gc *guestCtx) kvmnetAgentMissing() bool {
	if !gc.viaQGA {
		return false
	}
	q := gc.g.QGA
	osName, arch := "unknown", "unknown"
	if q.OS != nil {
		osName, arch = orNone(q.OS.PrettyName), orNone(q.OS.Machine)
	}
	why := "the domain has no " + snapshot.ChannelKvmnet + " channel"
	fix := InstallAgentCommand(gc.dom.Name) + " (uploads the agent package through qemu-guest-agent, installs it, adds the channel; no network needed in the guest)"
	if gc.transport() != snapshot.TransportNone {
		why = "the kvmnet agent does not answer on " + orNone(gc.g.Address)
	} else {
		// Without the channel nothing tells whether the agent is installed: a guest that has it only
		// lost the channel (virsh edit, a copied domain XML) needs the channel alone.
		fix += "; if kvmnet-agent is already installed there, kvmnetctl guests enable-channel " + gc.dom.Name + " is enough"
	}
	gc.add(Finding{
		Code: CodeKvmnetAgentMissing, Severity: SeverityWarning, Subject: SubjectGuest(gc.dom.Name, ""),
		Summary: fmt.Sprintf("%s runs qemu-guest-agent but not kvmnet-agent (%s): interfaces and addresses come from qemu-guest-agent; routes, profiles and checks are unknown, and nothing can be repaired from inside until kvmnet-agent is installed",
			gc.dom.Name, why),
		Fix: fix,
		Evidence: []string{ev("agent", AgentQGA), ev("transport", string(gc.transport())), ev("kvmnet_error", gc.g.Error),
			ev("os", osName), ev("arch", arch), ev("qga_interfaces", len(q.Interfaces))},
	})
	return true
}

// neitherAgent is the evidence added when qemu-guest-agent was asked too and did not answer: the
// report then rests on host facts alone (lease, neighbour table, link state). Nil when it was not asked.
func (gc *guestCtx) neitherAgent() []string {
	q := gc.g.QGA
	if q == nil || q.Answered {
		return nil
	}
	return []string{ev("qga", "no answer"), ev("qga_error", strings.TrimSpace(q.Error)), ev("view", "host facts only: lease, neighbour table, link state")}
}
