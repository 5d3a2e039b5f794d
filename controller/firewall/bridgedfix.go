package firewall

import "fmt"

// BridgedAcceptFix returns the ACCEPT rule repair for bridge_netfilter_drop: frames bridged on bridge
// (in and out the bridge device, physdev-is-bridged: never routed traffic) are accepted at the top
// of chain (DOCKER-USER, which Docker jumps to first from FORWARD, or FORWARD itself) in the
// iptables world iptables names ("iptables-nft" or "iptables-legacy": the one whose rule dropped
// them). Checked with -C first, so applying twice adds nothing.
func BridgedAcceptFix(bridge, chain, iptables string) (Fix, error) {
	if err := checkIface("bridge", bridge); err != nil {
		return Fix{}, err
	}
	if chain != "DOCKER-USER" && chain != "FORWARD" {
		return Fix{}, fmt.Errorf("chain %q: want DOCKER-USER or FORWARD", chain)
	}
	if iptables != "iptables-nft" && iptables != "iptables-legacy" {
		return Fix{}, fmt.Errorf("iptables command %q: want iptables-nft or iptables-legacy", iptables)
	}
	rule := []string{chain, "-i", bridge, "-o", bridge, "-m", "physdev", "--physdev-is-bridged",
		"-m", "comment", "--comment", "kvmnet: bridged guests on " + bridge, "-j", "ACCEPT"}
	cmd := func(op string) []string { return append([]string{iptables, op}, rule...) }
	persist := "the rule is lost at reboot: persist it with iptables-persistent (`netfilter-persistent save`) or a unit that runs the same command"
	if chain == "DOCKER-USER" {
		persist = "Docker keeps DOCKER-USER across its own restarts, but " + persist + " ordered After=docker.service"
	}
	return Fix{
		Code:    "bridge_netfilter_drop",
		Summary: fmt.Sprintf("accept frames bridged on %s in %s %s before the drop", bridge, iptables, chain),
		Commands: []Command{{Argv: cmd("-I"), Check: cmd("-C"),
			Why: "br_netfilter hands frames bridged on " + bridge + " to the FORWARD hook; accept them there, routed traffic stays filtered"}},
		Persist: persist,
	}, nil
}
