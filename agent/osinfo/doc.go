// Package osinfo reads the guest's identity: /etc/os-release (falling back to
// /usr/lib/os-release) with its shell-like quoting, the kernel release and the host name from
// /proc/sys/kernel, all under a root directory so tests use temporary trees. Parse is fuzzed: the
// file is input the agent does not control.
//
// It must never import netlink, D-Bus or file-writing code.
package osinfo
