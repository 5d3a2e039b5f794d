package firewall

import (
	"sort"
)

// State is everything read from one host's (or namespace's) firewall: the parsed rule sets of each
// backend plus UFW and firewalld facts. It is pure data once read; Evaluate and Snapshot do no I/O.
type State struct {
	// IPTablesNFT is the iptables-nft dump (nil when iptables-nft is not installed).
	IPTablesNFT *IPTables `json:"iptables_nft,omitempty"`
	// IPTablesLegacy is the iptables-legacy dump (nil when absent or empty).
	IPTablesLegacy *IPTables `json:"iptables_legacy,omitempty"`
	// NFTables is the nft ruleset (nil when nft is not installed).
	NFTables *NFTables `json:"nftables,omitempty"`
	// UFWDefaults are the KEY=value lines of /etc/default/ufw (nil when the file is absent).
	UFWDefaults map[string]string `json:"ufw_defaults,omitempty"`
	// Firewalld is firewalld's permanent configuration and runtime state (nil when neither its files
	// nor its nftables table exist).
	Firewalld *FirewalldConfig `json:"firewalld,omitempty"`
	// FirewalldRunning is true when firewalld's nftables table exists or its pid file names a live
	// process.
	FirewalldRunning bool `json:"firewalld_running"`
	// FirewalldLibvirtZone is true when firewalld has a libvirt zone (its file, or its chains).
	FirewalldLibvirtZone bool `json:"firewalld_libvirt_zone"`
	// Evidence are key=value words about what was read and how.
	Evidence []string `json:"evidence,omitempty"`
	// Errors are read problems that left part of the state unknown.
	Errors []string `json:"errors,omitempty"`
}

// reconcile marks the nft tables that belong to iptables-nft so that they are evaluated once, from
// the iptables-save dump.
func (s *State) reconcile() {
	if s.NFTables == nil || s.IPTablesNFT.Empty() {
		return
	}
	for _, t := range s.NFTables.Tables {
		if t.Family == "ip" && s.IPTablesNFT.Table(t.Name) != nil {
			t.ManagedBy = "iptables-nft"
		}
	}
}

// Evaluate walks every backend's base chains registered at hook, in priority order, for packet p.
// A drop or reject in any base chain is final; an accept only ends that base chain, and the packet
// goes on to the next one (of the same or another backend). At postrouting the first source NAT
// (MASQUERADE/SNAT) found is reported.
func (s *State) Evaluate(hook Hook, p Packet) Result {
	s.reconcile()
	// Equal priorities run in registration order, which no dump shows; native nft chains are put
	// first. The verdict never depends on that order (any drop is final), only the trace does.
	var chains []baseChain
	chains = append(chains, s.NFTables.baseChains(hook)...)
	chains = append(chains, s.IPTablesNFT.baseChains(hook)...)
	chains = append(chains, s.IPTablesLegacy.baseChains(hook)...)
	for i := range chains {
		chains[i].order = i
	}
	sort.SliceStable(chains, func(i, j int) bool { return chains[i].prio < chains[j].prio })

	tr := &tracer{}
	res := Result{Verdict: verdictAccept}
	// When every base chain accepts, the rule reported is the explicit accept that saved the packet
	// from a dropping policy (UFW's route allow, a DOCKER-USER rule), else the first explicit accept.
	var firstAccept, saving, last *chainVerdict
	var lastBackend, acceptBackend, savingBackend string
	natDone := false
	for _, bc := range chains {
		if bc.nat && natDone {
			tr.add("%s (priority %d): skipped, the connection already has a source NAT binding", bc.name, bc.prio)
			continue
		}
		tr.add("%s (priority %d)", bc.name, bc.prio)
		v := bc.eval(p, tr)
		if v.policy {
			tr.add("%s: %s", v.chain, v.rule)
		}
		switch v.verdict {
		case verdictAccept:
			if v.nat != "" {
				res.NAT = v.nat
				natDone = true
				firstAccept, acceptBackend = &v, bc.backend
			}
			if firstAccept == nil && !v.policy {
				vv := v
				firstAccept, acceptBackend = &vv, bc.backend
			}
			if saving == nil && !v.policy && v.nat == "" && bc.policy != "" && bc.policy != verdictAccept {
				vv := v
				saving, savingBackend = &vv, bc.backend
			}
			vv := v
			last, lastBackend = &vv, bc.backend
		default:
			res.Verdict, res.Rule, res.Chain, res.Backend = v.verdict, v.rule, v.chain, bc.backend
			res.Trace, res.Uncertain = tr.lines, tr.uncertain
			return res
		}
	}
	res.Trace, res.Uncertain = tr.lines, tr.uncertain
	switch {
	case hook == HookPostrouting && res.NAT != "":
		res.Rule, res.Chain, res.Backend = firstAccept.rule, firstAccept.chain, acceptBackend
	case hook == HookPostrouting:
		res.Rule, res.Chain, res.Backend = "no source NAT rule matched", "", "none"
	case saving != nil:
		res.Rule, res.Chain, res.Backend = saving.rule, saving.chain, savingBackend
	case firstAccept != nil:
		res.Rule, res.Chain, res.Backend = firstAccept.rule, firstAccept.chain, acceptBackend
	case last != nil:
		res.Rule, res.Chain, res.Backend = last.rule, last.chain, lastBackend
	default:
		res.Rule, res.Chain, res.Backend = "no base chain at this hook (kernel default accept)", "", "none"
	}
	return res
}
