// Package link discovers the guest's network interfaces and main routing table through netlink
// (vishvananda/netlink, on a handle the caller gives, so tests point it at a namespace of their
// own) and sysfs (driver and PCI path, read under a root directory the caller gives), and streams
// link and address changes as kvmnetv1.Event values.
//
// Interfaces are identified by MAC, never by name: the same NIC is enp1s0, ens3 or eth0 depending on
// the distribution (FindByMAC).
//
// Watch is event-driven only: it blocks in netlink subscriptions and never wakes up on a timer.
//
// It must never import NetworkManager, D-Bus or file-writing code (agent/managedfile): it only reads.
package link
