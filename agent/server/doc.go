// Package server builds kvmnet-agent's gRPC server around a kvmnetv1.AgentServer: message size
// limits, keepalive enforcement suited to single-stream transports (virtio-serial) and no pings of
// its own unless HostKeepalive asks for them (so an idle agent never wakes up), a cap on every
// unary RPC's deadline, request logging, and the report-only gate (allow_apply: false makes Apply,
// Confirm and Rollback answer PERMISSION_DENIED). It serves on any net.Listener from agent/transport.
//
// It must never import the NetworkManager, netlink or apply packages (the service brings those) nor
// anything under controller/.
package server
