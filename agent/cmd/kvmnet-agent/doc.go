// Command kvmnet-agent runs inside a Linux guest and serves the kvmnet.v1 Agent gRPC API to the
// host's kvmnetctl over virtio-serial (/dev/virtio-ports/org.kvmnet.agent.0), vsock (port 7531, host
// root only) or a unix socket. It reads /etc/kvmnet/agent.yaml (see agent/config), logs to stderr
// (plain key=value lines without timestamps under journald), and tells systemd when it is ready
// (sd_notify READY=1 when NOTIFY_SOCKET is set).
//
// It is built static (CGO_ENABLED=0). It wires packages together and holds no logic of its own
// beyond flags; it must never import anything under controller/.
package main
