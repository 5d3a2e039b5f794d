// Package install puts kvmnet-agent into a guest that has none, through qemu-guest-agent: it checks
// the preconditions (domain running, qemu-guest-agent channel present and answering, the commands it
// needs allowed, a supported OS family and architecture), chooses the agent package for the guest,
// uploads it in chunks (guest-file-open/write/close), checks its sha256 inside the guest before
// anything is installed, installs it with dpkg -i or rpm -U (guest-exec: no network needed in the
// guest), reports the installed version, adds the org.kvmnet.agent.0 channel and waits until the
// agent answers.
//
// It talks to the guest only through the Guest interface (controller/qga's Client) and to the host
// through Host (libvirt, controller/channel and controller/agentclient, wired by the CLI). It must
// never import libvirt (cgo), the CLI or diagnose.
package install
