// Package diagnose turns a controller/snapshot.Snapshot into a Report: one row per guest NIC that puts
// the guest's view (interface matched by MAC, addresses, profiles, IPv6, apt) next to the host's
// (network, bridge, lease, neighbour entry, firewall verdict), and findings with stable codes, a
// severity, a subject, a one-line summary carrying the evidence, and the fix.
//
// It is pure: plain structs in, plain structs out. It must never do I/O (no files, sockets, processes,
// clocks other than values found in the snapshot), never import an adapter (controller/libvirt,
// hostnet, firewall, agentclient, collect) and never depend on cgo. Network kinds are judged by their
// own rules: an isolated network without internet is healthy, a bridged network's addresses come
// from outside libvirt (neighbour entries, not leases), a routed network needs no MASQUERADE.
package diagnose
