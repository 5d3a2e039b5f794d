// Package qga reports qemu-guest-agent in the guest: whether its binary is installed, whether a
// qemu-ga process runs (scanning /proc/*/comm), and whether its virtio-serial channel
// /dev/virtio-ports/org.qemu.guest_agent.0 exists. Everything is read under a root directory so
// tests use temporary trees.
//
// It must never import netlink, D-Bus or file-writing code, and never opens the channel itself
// (the port can be opened once; qemu-ga owns it).
package qga
