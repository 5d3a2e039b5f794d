// Package stack decides which software configures each network interface of the guest:
// NetworkManager (asked through the small NMProbe interface; agent/nm answers it), systemd-networkd
// (its runtime state under /run/systemd/netif and its .network files), ifupdown
// (/etc/network/interfaces with source/source-directory includes), netplan (renderer in
// /etc/netplan/*.yaml, which hands the NIC to NetworkManager or networkd), or none.
//
// The decision comes with evidence as key=value words, and for the stacks kvmnet does not manage it
// states precisely what would be needed (e.g. ifupdown_stanza_missing=enp1s0
// need='auto enp1s0\niface enp1s0 inet dhcp'); it never changes any of them. Every file is read
// under a root directory, so tests use temporary trees.
//
// It must never import D-Bus, netlink or file-writing code.
package stack
