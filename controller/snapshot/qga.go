package snapshot

import "time"

// QGAView is what qemu-guest-agent told about a guest without a reachable kvmnet agent: its
// interfaces and OS. Every field is bounded and sanitised by controller/qga.
type QGAView struct {
	// Answered is true when guest-network-get-interfaces answered.
	Answered bool `json:"answered"`
	// Error says why qemu-guest-agent gave no view ("" when it answered).
	Error string `json:"error,omitempty"`
	// HostName is guest-get-host-name's answer.
	HostName string `json:"host_name,omitempty"`
	// OS is guest-get-osinfo's answer (nil when that command failed).
	OS *QGAOS `json:"os,omitempty"`
	// Interfaces are the guest's interfaces except lo.
	Interfaces []QGAInterface `json:"interfaces,omitempty"`
	// Latency is how long the interface query took.
	Latency time.Duration `json:"latency_ns,omitempty"`
}

// QGAOS is the guest's OS as guest-get-osinfo names it.
type QGAOS struct {
	// ID is os-release's ID ("debian", "rhel", ...).
	ID string `json:"id,omitempty"`
	// PrettyName is os-release's PRETTY_NAME.
	PrettyName string `json:"pretty_name,omitempty"`
	// VersionID is os-release's VERSION_ID.
	VersionID string `json:"version_id,omitempty"`
	// Machine is uname -m ("x86_64", "aarch64").
	Machine string `json:"machine,omitempty"`
	// KernelRelease is uname -r.
	KernelRelease string `json:"kernel_release,omitempty"`
}

// QGAInterface is one guest interface seen through qemu-guest-agent.
type QGAInterface struct {
	// Name in the guest.
	Name string `json:"name"`
	// MAC, lower case ("" when unknown).
	MAC string `json:"mac,omitempty"`
	// IPv4 addresses in CIDR form.
	IPv4 []string `json:"ipv4,omitempty"`
	// IPv6 addresses in CIDR form.
	IPv6 []string `json:"ipv6,omitempty"`
}
