// Package sysctl owns IPv6 on/off in the guest: it reads net.ipv6.conf.{all,default,<if>}.disable_ipv6
// under a root directory, decides whether IPv6 is usable (a global address and a default route,
// from agent/link data), renders kvmnet's persistent file /etc/sysctl.d/99-kvmnet-disable-ipv6.conf,
// and computes and performs the live writes that disable or re-enable IPv6.
//
// File writes go through agent/files (atomic, backed up, restorable) and live writes through the
// Writer interface (ProcWriter writes <root>/proc/sys), so tests use a temporary root.
//
// It must never import netlink or NetworkManager code: interface and route data come in as
// kvmnetv1 values.
package sysctl
