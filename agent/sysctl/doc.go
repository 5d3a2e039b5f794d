// Package sysctl owns IPv6 on/off in the guest: it reads net.ipv6.conf.{all,default,<if>}.disable_ipv6
// under a root directory, decides whether IPv6 is usable (a global address and a default route,
// from agent/link data) and renders kvmnet's persistent file /etc/sysctl.d/99-kvmnet-disable-ipv6.conf.
// Making the change (that file through agent/managedfile, the live all/default sysctls) is agent/apply's
// alone.
//
// It must never import netlink or NetworkManager code: interface and route data come in as
// kvmnetv1 values.
package sysctl
