// Package channel puts a domain's kvmnet virtio-serial channel (org.kvmnet.agent.0) where only QEMU's
// user can reach it: `kvmnetctl guests enable-channel VM [--vsock]` (Enable) and the repair behind
// `kvmnetctl host fix --only channel_socket_exposed` (FixExposed).
//
// The domain XML edit is pure text surgery (PlanChannel): the persistent XML is changed only where the
// channel (or vsock device) is added or its <source> moved, so everything libvirt or the user wrote
// stays byte for byte, and the change is shown as a unified diff (Diff). The channel directory
// (/var/lib/kvmnet/channels, 0700, owned by the user QEMU runs as — found by controller/sockaccess, never
// assumed) is made by PrepareDir, which also writes /etc/tmpfiles.d/kvmnet.conf so it survives reboots.
// libvirt is reached only through the small Domains interface (controller/libvirt implements it).
//
// It must never import libvirt bindings (no cgo), controller/diagnose or the CLI.
package channel
