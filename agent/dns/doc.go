// Package dns reads the guest's resolver configuration under a root directory: how
// /etc/resolv.conf is produced (plain file, systemd-resolved stub 127.0.0.53 with its upstream
// servers from /run/systemd/resolve/resolv.conf, or NetworkManager), the nameservers and search
// domains in use, and the evidence for that decision as key=value words. It also builds resolvers
// that ask one given server (to test whether the DHCP-provided server answers).
//
// It must never import netlink, NetworkManager or file-writing code: it only reads and asks.
package dns
