// Package transport gives kvmnet-agent the net.Listener values its gRPC server serves on:
//
//   - unix:/path — a unix socket (tests, local debugging), created 0600, a stale socket removed;
//   - vsock:PORT — AF_VSOCK, wrapped in a filter that accepts only the host (CID 2) calling from a
//     privileged source port (< 1024, so only root on the host), logging and closing everything else;
//   - virtio-serial:/dev/virtio-ports/org.kvmnet.agent.0 — one character device presented as a
//     listener whose Accept yields one connection at a time, after the resync handshake of package
//     resync, never spinning on the EOF the device returns while no host is connected.
//
// It owns only the transports. It must never import the gRPC service, the NetworkManager or netlink
// packages, or anything under controller/.
package transport
