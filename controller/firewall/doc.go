// Package firewall reads a host's packet filter (iptables-nft, iptables-legacy and native
// nftables), finds what libvirt, Docker, UFW and firewalld put there, and evaluates what the kernel
// would do with guest packets — instead of only listing rules. It also provides the host fix
// primitives for ufw_routed_blocked, forward_policy_drop, bridge_netfilter_drop and the firewalld
// codes (exact argv first, then applied through the runner).
//
// How rules are read (the decision, with its reasons):
//   - iptables rules come from `iptables-nft-save` (falling back to `iptables-save`) and
//     `iptables-legacy-save`, parsed as text. nft shows iptables-nft's own matches only as opaque
//     "xt conntrack"/"xt addrtype" expressions (seen with nft 1.0.6 on UFW's rules), so iptables-save
//     is the only faithful view of those tables.
//   - native nftables tables (libvirt >= 10.4's `libvirt_network`, firewalld's `inet firewalld`) come
//     from `nft -j list ruleset`, parsed as JSON. Shelling out to nft (through controller/runner)
//     rather than using github.com/google/nftables keeps the controller free of a netlink rule
//     decoder that must track kernel expression encodings, sees exactly what the user sees with
//     `nft list ruleset`, works unchanged inside a namespace (`ip netns exec`/`nsenter`), and lets
//     unit tests feed captured JSON. nft tables that iptables-nft owns (same family/name as a table
//     in the iptables-nft dump, or containing xt expressions) are evaluated from iptables-save only.
//   - firewalld is read from its files (zones and policies in /usr/lib/firewalld and /etc/firewalld,
//     firewalld.conf: the permanent configuration) and from its `inet firewalld` table (runtime:
//     which zone each interface is in, which policies are active), never through firewall-cmd or
//     D-Bus, so reading never talks to a system bus. Its fixes run firewall-cmd (runtime and
//     permanent) on the bus FirewallCmd names: the system bus in production, a private one in tests.
//
// Evaluation: every base chain registered at a hook (iptables' built-in chains with their fixed
// priorities, nft base chains with theirs) is walked in priority order, following jumps, gotos and
// returns and applying policies. A drop or reject anywhere is final; an accept ends only that base
// chain and the packet continues to the next one — so libvirt's accept in its own nftables table
// does not save a packet from UFW's or Docker's FORWARD DROP in iptables' filter table. Matches the
// evaluator does not model make their rule "assumed not to match", and the result lists them.
//
// The package owns only reading, evaluating and the firewall fix primitives. It must never import
// controller/diagnose or controller/libvirt, and never run anything but through a runner.Runner.
package firewall
