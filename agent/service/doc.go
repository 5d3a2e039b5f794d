// Package service implements kvmnetv1.AgentServer: it assembles GetState from the sensors
// (agent/link, agent/netstack, agent/sysctl, agent/pkgconf, agent/dns, agent/qga, agent/osinfo,
// agent/managedfile) and agent/nm, runs checks through agent/checks, hands Apply/Confirm/Rollback to
// agent/apply, and streams Watch events merged from netlink, NetworkManager signals and checkpoints.
//
// Every dependency sits behind a small interface in Options so unit tests use fakes; New wires the
// real backends from config.Config when a dependency is nil. The allow_apply gate itself is
// agent/server's; this package only reports the switch in GetState.
//
// A host that disconnects in the middle of Apply (its call is cancelled) does not interrupt it: the
// agent finishes every step and the checkpoint stays pending. After reconnecting, the controller
// finds it in GetState's pending_checkpoint and may Confirm or Rollback it until its rollback
// deadline; unconfirmed, it rolls back by itself at that deadline — the same as when the controller
// dies between Apply and Confirm. Only the call's deadline (capped by agent/server) aborts an Apply
// half-way, and then everything done so far is rolled back at once (Aborted).
//
// NetworkManager restarting (cleanly or after a crash) during Apply, or while a checkpoint is
// pending, is agent/apply's to handle (see its package doc): Apply returns Aborted naming the restart
// with the previous profiles restored from the agent's own record, or Unavailable ("start
// NetworkManager") when it does not come back, leaving a pending checkpoint that only Rollback (or its
// deadline) resolves.
//
// It must never import transport or gRPC server code (agent/transport, agent/server): it is the
// service, not the way it is served.
package service
