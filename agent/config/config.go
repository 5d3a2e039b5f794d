// Package config holds kvmnet-agent's configuration: the YAML file /etc/kvmnet/agent.yaml, its
// defaults, and validation. It does no I/O besides reading that file.
package config

import "time"

// DefaultPath is where the agent reads its configuration from.
const DefaultPath = "/etc/kvmnet/agent.yaml"

// Config is the agent's configuration. Every kind of change the agent can make has an opt-out here.
type Config struct {
	// Listen lists the transports to serve: "virtio-serial:/dev/virtio-ports/org.kvmnet.agent.0",
	// "vsock:7531", "unix:/run/kvmnet/agent.sock". Default: the virtio-serial port and vsock port 7531
	// (each only when its device exists).
	Listen []string `yaml:"listen"`
	// AllowApply enables Apply, Confirm and Rollback. false is report-only mode: the agent answers
	// PERMISSION_DENIED and changes nothing. Default true.
	AllowApply bool `yaml:"allow_apply"`
	// ManageProfiles lets the agent create, change and delete NetworkManager profiles. Default true.
	ManageProfiles bool `yaml:"manage_profiles"`
	// ManageIPv6 lets the agent write /etc/sysctl.d/99-kvmnet-disable-ipv6.conf and live sysctls.
	// Default true.
	ManageIPv6 bool `yaml:"manage_ipv6"`
	// ManagePackageManager lets the agent write apt.conf.d and dnf.conf settings. Default true.
	ManagePackageManager bool `yaml:"manage_package_manager"`
	// ManageNetplan lets the agent write /etc/netplan/90-kvmnet.yaml, replace user netplan files
	// whose definitions name missing interfaces by managed copies, and run netplan generate/apply.
	// Default true.
	ManageNetplan bool `yaml:"manage_netplan"`
	// ManageNetworkd lets the agent write /etc/systemd/network/10-kvmnet-<mac>.network, neutralise
	// .network files for missing interfaces, and run networkctl reload/reconfigure. Default true.
	ManageNetworkd bool `yaml:"manage_networkd"`
	// ManageIfupdown lets the agent write /etc/network/interfaces.d/kvmnet-<ifname>, edit
	// /etc/network/interfaces (source line, stale stanzas) and start ifup@<ifname>. Default true.
	ManageIfupdown bool `yaml:"manage_ifupdown"`
	// Root is the filesystem root the agent reads and writes (/etc, /proc/sys, /var/lib/kvmnet are
	// taken relative to it). Default "/"; tests point it at a temporary directory.
	Root string `yaml:"root"`
	// StateDir holds backups and the list of managed files, relative to Root. Default /var/lib/kvmnet.
	StateDir string `yaml:"state_dir"`
	// DefaultRollbackTimeout is used when an Apply request gives none. Default 60s.
	DefaultRollbackTimeout time.Duration `yaml:"default_rollback_timeout"`
	// LogLevel is debug, info, warn or error. Default info.
	LogLevel string `yaml:"log_level"`
	// HostKeepalive makes the agent ping a connected host after this long without traffic and drop
	// the connection when the ping goes unanswered for 5 s, freeing a single-client virtio-serial
	// port held by a host process that hangs without closing it. Default 0: no pings, so an idle
	// agent never wakes up (a host that exits or closes its connection is noticed without pings on
	// every transport). When set: at least 10s.
	HostKeepalive time.Duration `yaml:"host_keepalive"`
}

// Default returns the configuration used when no file exists.
func Default() Config {
	return Config{
		Listen: []string{
			"virtio-serial:/dev/virtio-ports/org.kvmnet.agent.0",
			"vsock:7531",
		},
		AllowApply:             true,
		ManageProfiles:         true,
		ManageIPv6:             true,
		ManagePackageManager:   true,
		ManageNetplan:          true,
		ManageNetworkd:         true,
		ManageIfupdown:         true,
		Root:                   "/",
		StateDir:               "/var/lib/kvmnet",
		DefaultRollbackTimeout: 60 * time.Second,
		LogLevel:               "info",
	}
}

// DisabledStacks lists the network stacks whose manage_* key is false (agent/netstack's names).
func (c Config) DisabledStacks() []string {
	var out []string
	if !c.ManageNetplan {
		out = append(out, "netplan")
	}
	if !c.ManageNetworkd {
		out = append(out, "networkd")
	}
	if !c.ManageIfupdown {
		out = append(out, "ifupdown")
	}
	return out
}
