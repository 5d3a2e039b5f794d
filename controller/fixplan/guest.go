package fixplan

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kvmnet/kvmnet/controller/checks"
	"github.com/kvmnet/kvmnet/controller/diagnose"
	"github.com/kvmnet/kvmnet/controller/snapshot"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// DefaultRollbackTimeout is how long an unconfirmed guest change lives before the guest undoes it.
const DefaultRollbackTimeout = 60 * time.Second

// ErrNoDomain is returned (wrapped) when the domain to fix does not exist.
var ErrNoDomain = errors.New("domain not found")

// ErrNoNIC is returned (wrapped) when --nic names a MAC the domain does not have.
var ErrNoNIC = errors.New("no such NIC")

// GuestOptions are the user's choices for `kvmnetctl guests fix`.
type GuestOptions struct {
	// Domain to fix.
	Domain string
	// MAC restricts the plan to one NIC ("" = every NIC on a libvirt network).
	MAC string
	// AllowStaticToDHCP is the user's consent to replace a static address in the wrong subnet by DHCP.
	AllowStaticToDHCP bool
	// AllowDNSReset is the user's consent to replace DNS servers set by hand in a profile
	// (ipv4.dns, ignore-auto-dns) by the network's, through the NIC's DHCP profile.
	AllowDNSReset bool
	// ReplaceForeignProfile is the user's consent to delete a profile someone else made under
	// kvmnet's name (guest_profile_name_taken) so the NIC's DHCP profile can take the name.
	ReplaceForeignProfile bool
	// RollbackTimeout for the agent's checkpoint (0 = DefaultRollbackTimeout).
	RollbackTimeout time.Duration
	// CheckURLs are extra HTTP GET targets the guest must reach before the fix is confirmed.
	CheckURLs []string
	// CheckDNSName is resolved in the guest to verify DNS ("" = checks.DefaultName).
	CheckDNSName string
}

// GuestStep explains one action of a guest plan: which finding it answers.
type GuestStep struct {
	// Code of the finding the action answers.
	Code diagnose.Code `json:"code"`
	// MAC of the NIC concerned ("" for guest-wide actions).
	MAC snapshot.MAC `json:"mac,omitempty"`
	// Summary for humans, e.g. "ensure DHCP profile on 52:54:00:aa:bb:cc (ipv6 disabled)".
	Summary string `json:"summary"`
}

// Skipped is a finding the guest plan leaves alone, and why.
type Skipped struct {
	// Finding left alone.
	Finding diagnose.Finding `json:"finding"`
	// Reason, with what to do instead.
	Reason string `json:"reason"`
}

// Verification is what must hold after Apply before the controller confirms.
type Verification struct {
	// LeaseMACs must each get a DHCP lease from libvirt's dnsmasq.
	LeaseMACs []snapshot.MAC `json:"lease_macs,omitempty"`
	// NeighborMACs must each appear in the neighbour table of their bridge (bridged networks,
	// where leases come from outside libvirt).
	NeighborMACs []snapshot.MAC `json:"neighbor_macs,omitempty"`
	// Checks the agent must pass (RunChecks).
	Checks []*kvmnetv1.Check `json:"checks,omitempty"`
}

// GuestPlan is a fix for one guest.
type GuestPlan struct {
	// Domain fixed.
	Domain string `json:"domain"`
	// Request is what is sent to the agent's Apply (DryRun is set by the executor).
	Request *kvmnetv1.ApplyRequest `json:"request"`
	// Steps explain the actions.
	Steps []GuestStep `json:"steps"`
	// HostSide are findings whose cause is on the host: `kvmnetctl host fix` handles them.
	HostSide []diagnose.Finding `json:"host_side,omitempty"`
	// Skipped are guest findings the plan does not act on.
	Skipped []Skipped `json:"skipped,omitempty"`
	// Verify is what must hold before Confirm.
	Verify Verification `json:"verify"`
}

// Empty reports whether the plan asks the agent for nothing.
func (p GuestPlan) Empty() bool { return len(p.Request.GetActions()) == 0 }

// ErrNoAgent is wrapped when the guest has no answering kvmnet agent but could get one through
// qemu-guest-agent (`kvmnetctl guests install-agent`).
var ErrNoAgent = errors.New("no kvmnet agent")

// Guest builds the fix plan for opts.Domain from a snapshot and its findings. It returns an error
// (and no plan) when the guest cannot be fixed through its agent at all: unknown domain, domain not
// running, NIC not in the domain, agent unreachable or in report-only mode.
func Guest(s snapshot.Snapshot, findings []diagnose.Finding, opts GuestOptions) (GuestPlan, error) {
	dom, ok := s.FindDomain(opts.Domain)
	if !ok {
		return GuestPlan{}, fmt.Errorf("%w: %q on %s; `virsh list --all` lists the domains", ErrNoDomain, opts.Domain, s.URI)
	}
	if !dom.Running() {
		return GuestPlan{}, fmt.Errorf("domain %q is %s; start it (`virsh start %s`) and run the fix again", dom.Name, dom.State, dom.Name)
	}
	mac := snapshot.ParseMAC(opts.MAC)
	if _, ok := dom.NIC(mac); mac != "" && !ok {
		return GuestPlan{}, fmt.Errorf("%w: domain %q has no NIC with MAC %s; its NICs: %s", ErrNoNIC, dom.Name, mac, nicMACs(dom))
	}
	g, ok := s.FindGuest(dom.Name)
	switch {
	case ok && !g.Reachable && g.QGA != nil && g.QGA.Answered:
		return GuestPlan{}, fmt.Errorf("%w: %q has no answering kvmnet agent but qemu-guest-agent answers: run `kvmnetctl guests install-agent %s`, then `kvmnetctl guests fix %s` again",
			ErrNoAgent, dom.Name, dom.Name, dom.Name)
	case !ok || g.Transport == snapshot.TransportNone:
		return GuestPlan{}, fmt.Errorf("domain %q has no kvmnet agent channel; add it with `kvmnetctl guests enable-channel %s`, install kvmnet-agent in the guest, then retry", dom.Name, dom.Name)
	case !g.Reachable:
		return GuestPlan{}, fmt.Errorf("kvmnet agent of %q does not answer on %s (%s); check `systemctl status kvmnet-agent` in the guest", dom.Name, g.Address, g.Error)
	case g.State != nil && g.State.GetConfig() != nil && !g.State.GetConfig().GetAllowApply():
		return GuestPlan{}, fmt.Errorf("kvmnet agent of %q is in report-only mode (allow_apply: false in /etc/kvmnet/agent.yaml); it changes nothing", dom.Name)
	}

	timeout := opts.RollbackTimeout
	if timeout <= 0 {
		timeout = DefaultRollbackTimeout
	}
	plan := GuestPlan{
		Domain:  dom.Name,
		Request: &kvmnetv1.ApplyRequest{RollbackTimeoutSeconds: uint32(timeout / time.Second)},
	}

	// Which NICs are eligible: on a libvirt network or host bridge, and selected by --nic.
	eligible := map[snapshot.MAC]snapshot.DomainNIC{}
	for _, n := range dom.NICs {
		if (n.Type == "network" || n.Type == "bridge") && (mac == "" || n.MAC == mac) {
			eligible[n.MAC] = n
		}
	}

	// NICs whose kvmnet profile name is held by someone else's profile: without consent their DHCP
	// fix would delete that profile (RemoveConflictingProfiles), so it is left to the user.
	nameTaken := map[snapshot.MAC]diagnose.Finding{}
	if !opts.ReplaceForeignProfile {
		for _, f := range findings {
			if f.Domain == dom.Name && f.Code == diagnose.CodeGuestProfileNameTaken && f.MAC != "" {
				nameTaken[f.MAC] = f
			}
		}
	}

	var dhcpMACs []snapshot.MAC
	disableIPv6 := false
	for _, f := range findings {
		if f.Domain != dom.Name {
			// Host and network findings that concern this guest's networks are named, not fixed here.
			if f.Domain == "" && hostSide(f) && f.Severity == diagnose.SeverityError &&
				(f.Network == "" || slices.ContainsFunc(dom.NICs, func(n snapshot.DomainNIC) bool { return s.Networks.NameOf(n) == f.Network })) {
				plan.HostSide = append(plan.HostSide, f)
			}
			continue
		}
		if f.MAC != "" && mac != "" && f.MAC != mac {
			continue
		}
		fixer := diagnose.FixerFor(f)
		switch {
		case hostSide(f):
			plan.HostSide = append(plan.HostSide, f)
		case fixer == diagnose.FixerGuestIPv6:
			disableIPv6 = true
		case f.Code == diagnose.CodeGuestDNSFailure && slices.Contains(f.Evidence, "dns_override=true") && !opts.AllowDNSReset:
			plan.Skipped = append(plan.Skipped, Skipped{Finding: f, Reason: "DNS is set by hand in the guest's profile (ipv4.dns / ignore-auto-dns), perhaps on purpose: rerun with " + diagnose.DNSResetFlag + " to use the network's DNS server through the NIC's DHCP profile"})
		case f.Code == diagnose.CodeGuestStaticWrongSubnet && !opts.AllowStaticToDHCP:
			plan.Skipped = append(plan.Skipped, Skipped{Finding: f, Reason: "a static address is the user's choice: rerun with --allow-static-to-dhcp to switch this NIC to DHCP"})
		case fixer == diagnose.FixerGuestDHCP:
			targets := []snapshot.MAC{f.MAC}
			if f.MAC == "" {
				targets = sortedKeys(eligible) // a profile bound to a missing name concerns every NIC
			}
			for _, m := range targets {
				if _, ok := eligible[m]; !ok {
					plan.Skipped = append(plan.Skipped, Skipped{Finding: f, Reason: fmt.Sprintf("NIC %s is not on a libvirt network or host bridge", m)})
					continue
				}
				if t, ok := nameTaken[m]; ok {
					plan.Skipped = append(plan.Skipped, Skipped{Finding: f, Reason: nameTakenReason(t)})
					continue
				}
				if !slices.Contains(dhcpMACs, m) {
					dhcpMACs = append(dhcpMACs, m)
				}
			}
		default:
			plan.Skipped = append(plan.Skipped, Skipped{Finding: f, Reason: "not something the agent can change: " + f.Fix})
		}
	}
	slices.Sort(dhcpMACs)

	ipv6Method := kvmnetv1.IPv6Method_IPV6_METHOD_UNSPECIFIED
	if disableIPv6 {
		ipv6Method = kvmnetv1.IPv6Method_IPV6_METHOD_DISABLED
	}
	for _, m := range dhcpMACs {
		plan.add(diagnoseCodeFor(findings, dom.Name, m), m, fmt.Sprintf("remove profiles that conflict with NIC %s or are bound to missing interfaces", m),
			&kvmnetv1.Action{Action: &kvmnetv1.Action_RemoveConflictingProfiles{RemoveConflictingProfiles: &kvmnetv1.RemoveConflictingProfiles{Mac: string(m)}}})
		plan.add(diagnoseCodeFor(findings, dom.Name, m), m, fmt.Sprintf("ensure DHCP profile kvm-dhcp-<ifname> on NIC %s (ipv6 %s)", m, ipv6Word(ipv6Method)),
			&kvmnetv1.Action{Action: &kvmnetv1.Action_EnsureDhcpProfile{EnsureDhcpProfile: &kvmnetv1.EnsureDHCPProfile{Mac: string(m), Ipv6Method: ipv6Method}}})
	}
	if disableIPv6 {
		plan.add(diagnose.CodeGuestIPv6Unroutable, "", "disable IPv6 (sysctl.d file + live sysctls): the host network cannot route it",
			&kvmnetv1.Action{Action: &kvmnetv1.Action_SetIpv6{SetIpv6: &kvmnetv1.SetIPv6{Disable: true}}})
		plan.add(diagnose.CodeGuestAptIPv6Risk, "", "force apt and dnf to IPv4 so they never wait on unreachable IPv6 mirrors",
			&kvmnetv1.Action{Action: &kvmnetv1.Action_SetPackageManagerIpv4{SetPackageManagerIpv4: &kvmnetv1.SetPackageManagerIPv4{Force: true}}})
	}

	plan.Verify = verification(s, eligible, dhcpMACs, opts)
	return plan, nil
}

// nameTakenReason says why a NIC's DHCP fix waits: someone else's profile has kvmnet's name, and
// what to do (the finding's fix names the profile's uuid and the commands).
func nameTakenReason(f diagnose.Finding) string {
	id, _ := f.Get("profile")
	uuid, _ := f.Get("uuid")
	return fmt.Sprintf("profile %q (uuid %s) was made by someone else under the name kvmnet needs for this NIC, and the fix would delete it: %s", id, uuid, f.Fix)
}

// hostSide reports whether a finding's cause is on the host, where fixing the guest cannot help.
func hostSide(f diagnose.Finding) bool {
	_, ok := diagnose.Lookup(f.Code)
	return ok && diagnose.CausedOnHostFor(f)
}

func (p *GuestPlan) add(code diagnose.Code, mac snapshot.MAC, summary string, a *kvmnetv1.Action) {
	p.Request.Actions = append(p.Request.Actions, a)
	p.Steps = append(p.Steps, GuestStep{Code: code, MAC: mac, Summary: summary})
}

// verification lists what must hold before Confirm: a lease (or neighbour entry on bridged networks)
// for each NIC the plan touches, then gateway, DNS, and egress checks from inside the guest.
func verification(s snapshot.Snapshot, eligible map[snapshot.MAC]snapshot.DomainNIC, macs []snapshot.MAC, opts GuestOptions) Verification {
	var v Verification
	t := checks.Targets{DNSName: opts.CheckDNSName}.WithDefaults()
	v4 := kvmnetv1.Family_FAMILY_V4
	v.Checks = append(v.Checks, checks.Gateway(v4, 3*time.Second), checks.DNS(t.DNSName, v4, 5*time.Second))
	seenBridgeIP := map[string]bool{}
	for _, m := range sortedKeys(eligible) {
		nic := eligible[m]
		net, _ := s.Networks.Of(nic)
		if slices.Contains(macs, m) {
			if net.LibvirtDHCP() {
				v.LeaseMACs = append(v.LeaseMACs, m)
			} else {
				v.NeighborMACs = append(v.NeighborMACs, m)
			}
		}
		// TCP to the bridge's dnsmasq proves the guest reaches its host over the NIC's network.
		if ip := net.BridgeIPv4(); ip != "" && net.DNSEnabled && !seenBridgeIP[ip] {
			seenBridgeIP[ip] = true
			v.Checks = append(v.Checks, checks.DnsmasqTCP(ip, 3*time.Second))
		}
	}
	for _, u := range opts.CheckURLs {
		v.Checks = append(v.Checks, checks.HTTP(u, 10*time.Second))
	}
	return v
}

// diagnoseCodeFor returns the most telling DHCP-related code reported for a NIC (for the step text).
func diagnoseCodeFor(findings []diagnose.Finding, domain string, mac snapshot.MAC) diagnose.Code {
	for _, want := range append([]diagnose.Code{diagnose.CodeGuestProfileWrongInterface, diagnose.CodeGuestStaticWrongSubnet}, diagnose.CodesFixedBy(diagnose.FixerGuestDHCP)...) {
		for _, f := range findings {
			if f.Domain == domain && f.Code == want && (f.MAC == mac || f.MAC == "") {
				return want
			}
		}
	}
	return diagnose.CodeGuestNoIPv4
}

func ipv6Word(m kvmnetv1.IPv6Method) string {
	if m == kvmnetv1.IPv6Method_IPV6_METHOD_DISABLED {
		return "disabled"
	}
	return "auto"
}

func nicMACs(d snapshot.Domain) string {
	var m []string
	for _, n := range d.NICs {
		m = append(m, string(n.MAC))
	}
	if len(m) == 0 {
		return "none"
	}
	return strings.Join(m, ", ")
}

func sortedKeys[V any](m map[snapshot.MAC]V) []snapshot.MAC {
	out := make([]snapshot.MAC, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
