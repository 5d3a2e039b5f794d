package firewall

import (
	"fmt"
	"slices"
	"strings"
)

// LibvirtHook is one jump libvirt's iptables backend puts into a built-in chain at start-up.
type LibvirtHook struct {
	// Table, e.g. "filter".
	Table string
	// Builtin chain that jumps, e.g. "FORWARD".
	Builtin string
	// Chain jumped to, e.g. "LIBVIRT_FWO".
	Chain string
}

// LibvirtHooks are libvirt's jumps (libvirt 6–10, iptables backend), in the order they appear in their
// built-in chain: FORWARD holds FWX, FWI, FWO, in that order, at its top.
var LibvirtHooks = []LibvirtHook{
	{"filter", "INPUT", "LIBVIRT_INP"},
	{"filter", "OUTPUT", "LIBVIRT_OUT"},
	{"filter", "FORWARD", "LIBVIRT_FWX"},
	{"filter", "FORWARD", "LIBVIRT_FWI"},
	{"filter", "FORWARD", "LIBVIRT_FWO"},
	{"nat", "POSTROUTING", "LIBVIRT_PRT"},
	{"mangle", "POSTROUTING", "LIBVIRT_PRT"},
}

// libvirtUnhooked returns "table/CHAIN" for each libvirt chain that exists in an iptables dump while
// its built-in chain has no jump to it.
func (s *State) libvirtUnhooked() []string {
	var out []string
	for _, d := range s.iptDumps() {
		for _, h := range LibvirtHooks {
			t := d.Table(h.Table)
			if t == nil || t.Chain(h.Chain) == nil {
				continue
			}
			hooked := false
			if b := t.Chain(h.Builtin); b != nil {
				hooked = slices.ContainsFunc(b.Rules, func(r *Rule) bool { return r.Target == h.Chain })
			}
			if key := h.Table + "/" + h.Chain; !hooked && !slices.Contains(out, key) {
				out = append(out, key)
			}
		}
	}
	return out
}

// LibvirtHooksFix returns the repair for libvirt chains that lost their jumps (unhooked as
// snapshot.Firewall.LibvirtUnhooked lists them): the jumps libvirtd itself adds at start-up, inserted
// at the top of each built-in chain in libvirt's order, each checked with -C first. iptables is the
// command holding libvirt's rules ("" = "iptables").
func LibvirtHooksFix(unhooked []string, iptables string) (Fix, error) {
	if iptables == "" {
		iptables = "iptables"
	}
	if iptables != "iptables" && iptables != "iptables-legacy" && iptables != "iptables-nft" {
		return Fix{}, fmt.Errorf("iptables command %q: want iptables, iptables-nft or iptables-legacy", iptables)
	}
	fix := Fix{
		Code:    "libvirt_rules_missing",
		Summary: "re-insert the jumps into libvirt's chains that libvirtd adds only at start-up",
		Persist: "libvirtd adds these jumps itself whenever it starts; nothing else to persist",
	}
	// Inserting at position 1 in reverse order leaves FORWARD as FWX, FWI, FWO like libvirt does.
	for i := len(LibvirtHooks) - 1; i >= 0; i-- {
		h := LibvirtHooks[i]
		key := h.Table + "/" + h.Chain
		if !slices.Contains(unhooked, key) {
			continue
		}
		rule := []string{"-t", h.Table, "-I", h.Builtin, "1", "-j", h.Chain}
		check := []string{iptables, "-t", h.Table, "-C", h.Builtin, "-j", h.Chain}
		fix.Commands = append(fix.Commands, Command{Argv: append([]string{iptables}, rule...), Check: check,
			Why: fmt.Sprintf("%s %s no longer jumps to %s", h.Table, h.Builtin, h.Chain)})
	}
	for _, u := range unhooked {
		if !slices.ContainsFunc(LibvirtHooks, func(h LibvirtHook) bool { return h.Table+"/"+h.Chain == u }) {
			return Fix{}, fmt.Errorf("unknown libvirt chain %q (want table/LIBVIRT_*, e.g. %s)", u, "filter/LIBVIRT_FWO")
		}
	}
	if len(fix.Commands) == 0 {
		return Fix{}, fmt.Errorf("no libvirt chain is unhooked: %s", strings.Join(unhooked, ","))
	}
	return fix, nil
}
