// Package collect builds a controller/snapshot.Snapshot of one host: libvirt's networks and domains,
// the host's bridges and sysctls, the firewall verdicts, who can reach each agent channel, and every
// running guest's agent view (GetState, optionally RunChecks) — all guests queried concurrently, each
// within one shared deadline, so one hung guest never delays the others beyond Options.Timeout.
//
// It talks to the world only through the small interfaces of this package (LibvirtSource,
// HostNetSource, FirewallSource, ChannelAccessSource, AgentDialer); the real implementations live in
// controller/libvirt, controller/hostnet, controller/firewall, controller/sockaccess and
// controller/agentclient and are wired by the CLI. It must never import those adapters (no cgo here),
// controller/diagnose, or the CLI.
package collect
