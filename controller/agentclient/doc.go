// Package agentclient connects the controller to a guest's kvmnet-agent over unix:/path,
// vsock:CID:PORT (from a privileged source port, so the agent knows root is calling) or
// serial:/path (the host end unix socket of the org.kvmnet.agent.0 virtio-serial channel, with the
// resync handshake of agent/transport/resync before HTTP/2). Calls carry deadlines and the channel
// keepalives, so a dead agent is an error in seconds.
//
// It owns only connecting and calling. It imports agent/transport/resync (the wire handshake shared
// with the agent) and never any other agent package, libvirt, or the CLI.
package agentclient
