// Package pkgconf owns the package managers' IPv4-only settings in the guest: apt's
// Acquire::ForceIPv4 (kvmnet's file /etc/apt/apt.conf.d/99kvmnet-force-ipv4) and dnf's ip_resolve=4
// in /etc/dnf/dnf.conf [main]. It reports who sets them (ABSENT, KVMNET, OTHER, NOT_INSTALLED) by
// parsing apt's configuration syntax and dnf's INI file under a root directory, and renders kvmnet's
// settings (RenderApt, RenderDnf). Making the change is agent/apply's alone, through agent/managedfile
// (atomic, with a backup of the user's dnf.conf; never an in-place edit).
//
// It must never import netlink, NetworkManager or gRPC server code.
package pkgconf
