// Package netstack decides which software configures each network interface of the guest:
// NetworkManager (asked through the small NMProbe interface; agent/nm answers it), systemd-networkd
// (its runtime state under /run/systemd/netif and its .network files), ifupdown
// (/etc/network/interfaces with source/source-directory includes), netplan (renderer in
// /etc/netplan/*.yaml, which hands the NIC to NetworkManager or networkd), or none.
//
// The decision comes with evidence as key=value words, and for stacks nothing configures it states
// precisely what would be needed (e.g. ifupdown_stanza_missing=enp1s0
// need='auto enp1s0\niface enp1s0 inet dhcp'). Every file is read under a root directory, so tests
// use temporary trees.
//
// It also owns the repair side for the file-based stacks: the Backend interface (IsManaging / Plan
// / Apply / Rollback, the shape of GoogleCloudPlatform guest-agent's network/manager), one backend
// per file (netplanbackend.go, networkdbackend.go, ifupdownbackend.go), and the Chooser that picks
// the backend per NIC from the detection (two stacks claiming one NIC: ErrConflict naming both with
// their files, nothing written). A backend only plans files and runs its stack's commands through
// the injected Runner (cmdrun in production); agent/apply writes the files through agent/managedfile
// (header, backup, state, snapshot) and rolls them back. NetworkManager is a Backend too
// (nmbackend.go): it writes no files, its Apply activates kvmnet's profile over the injected NMClient
// (agent/nm's *Client), and it is a Checkpointer (NetworkManager's checkpoint: made before the steps,
// re-armed after, destroyed on confirm, rolled back otherwise). The Chooser gives it the NICs
// NetworkManager claims and those no file-based stack would configure.
//
// It must never dial D-Bus, use netlink or write files: NetworkManager only through NMClient.
package netstack
