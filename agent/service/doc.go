// Package service implements kvmnetv1.AgentServer: it assembles GetState from the sensors
// (agent/link, agent/stack, agent/sysctl, agent/pkgconf, agent/dns, agent/qga, agent/osinfo,
// agent/files) and agent/nm, runs checks through agent/checks, hands Apply/Confirm/Rollback to
// agent/apply, and streams Watch events merged from netlink, NetworkManager signals and checkpoints.
//
// Every dependency sits behind a small interface in Options so unit tests use fakes; New wires the
// real backends from config.Config when a dependency is nil. The allow_apply gate itself is
// agent/server's; this package only reports the switch in GetState.
//
// It must never import transport or gRPC server code (agent/transport, agent/server): it is the
// service, not the way it is served.
package service
