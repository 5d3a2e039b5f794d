// Package agentclient connects the controller to a guest's kvmnet-agent over unix:/path,
// vsock:CID:PORT (from a privileged source port, so the agent knows root is calling) or
// serial:/path (the host end unix socket of the org.kvmnet.agent.0 virtio-serial channel, with the
// resync handshake of proto/kvmnet/v1/resync before HTTP/2). Calls carry deadlines and the channel
// keepalives, so a dead agent is an error in seconds.
//
// It owns only connecting and calling. Of the agent's side it knows only the wire contract under proto/ (the API and the
// resync handshake); it imports no agent package, libvirt, or the CLI.
package agentclient
