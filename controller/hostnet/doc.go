// Package hostnet reads the host's own network facts the controller needs, in pure Go over netlink:
// Linux bridges (oper/admin state, addresses, ports, STP, neighbour entries), the IPv4 uplink
// (default-route interface), whether the host has an IPv6 default route, net.ipv4.ip_forward (and its
// fix: set now + persist in /etc/sysctl.d), the host's prefixes for "is this subnet free", and the
// state of libvirt's dnsmasq per network (pid file, live process, answers DNS on the bridge IP).
//
// Every read happens in one network namespace chosen at construction: the current one (a real host),
// or another one (tests, and the lab, where libvirtd runs inside a namespace). Netlink goes through a
// *netlink.Handle opened in that namespace. /proc/sys/net is per network namespace of the *reading
// thread*, so sysctls of another namespace are read and written on a locked OS thread switched into it
// with setns (NetnsSysctl); the DNS probe's socket is created the same way. Files (libvirt's run dir,
// /etc/sysctl.d) are read and written under injected roots, e.g. /proc/<libvirtd pid>/root for a
// libvirtd in its own mount namespace.
//
// It must never import libvirt (cgo), controller/diagnose or the CLI, and never change anything but
// the ip_forward sysctl and its sysctl.d file, and only when asked.
package hostnet
