package fixplan

import (
	"slices"
	"strings"
	"testing"

	"github.com/kvmnet/kvmnet/controller/diagnose"
	"github.com/kvmnet/kvmnet/controller/snapshot"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

const (
	mac1 = "52:54:00:00:00:01"
	mac2 = "52:54:00:00:00:02"
)

func natNet() snapshot.Network {
	return snapshot.Network{Name: "default", Active: true, Autostart: true, Forward: snapshot.ForwardNAT, Bridge: "virbr0",
		DNSEnabled: true, LeasesSupported: true,
		IPs: []snapshot.NetworkIP{{Family: 4, Address: "192.168.122.1", Prefix: 24, Subnet: "192.168.122.0/24",
			DHCPRanges: []snapshot.DHCPRange{{Start: "192.168.122.2", End: "192.168.122.254"}}}}}
}

func bridgedNet() snapshot.Network {
	return snapshot.Network{Name: "lan", Active: true, Autostart: true, Forward: snapshot.ForwardBridge, Bridge: "br0"}
}

// world is a host with one NAT network, one bridged network, and vm1 (two NICs) reachable.
func world(mut ...func(*snapshot.Snapshot)) snapshot.Snapshot {
	s := snapshot.Snapshot{
		URI:      "qemu:///system",
		Networks: []snapshot.Network{natNet(), bridgedNet()},
		Host:     snapshot.Host{Read: true, Uplink: "eth0", IPForward: true, IPForwardKnown: true},
		Domains: []snapshot.Domain{{Name: "vm1", State: "running", NICs: []snapshot.DomainNIC{
			{MAC: mac1, Type: "network", Network: "default", Bridge: "virbr0", Target: "vnet0"},
			{MAC: mac2, Type: "network", Network: "lan", Bridge: "br0", Target: "vnet1"},
		}}},
		Guests: []snapshot.Guest{{Domain: "vm1", Transport: snapshot.TransportVirtioSerial, Address: "/x.sock", Reachable: true,
			State: &kvmnetv1.GuestState{Config: &kvmnetv1.AgentConfig{AllowApply: true}}}},
	}
	for _, m := range mut {
		m(&s)
	}
	return s
}

func f(code diagnose.Code, mac snapshot.MAC, ev ...string) diagnose.Finding {
	return diagnose.Finding{Code: code, Severity: diagnose.SeverityError, Domain: "vm1", MAC: mac, Evidence: ev, Fix: "do X"}
}

// actions renders a request's actions as short words for comparison.
func actions(r *kvmnetv1.ApplyRequest) []string {
	var out []string
	for _, a := range r.GetActions() {
		switch x := a.GetAction().(type) {
		case *kvmnetv1.Action_EnsureDhcpProfile:
			out = append(out, "ensure "+x.EnsureDhcpProfile.GetMac()+" "+strings.TrimPrefix(x.EnsureDhcpProfile.GetIpv6Method().String(), "IPV6_METHOD_"))
		case *kvmnetv1.Action_RemoveConflictingProfiles:
			out = append(out, "remove-conflicts "+x.RemoveConflictingProfiles.GetMac())
		case *kvmnetv1.Action_SetIpv6:
			out = append(out, "ipv6-disable")
		case *kvmnetv1.Action_SetPackageManagerIpv4:
			out = append(out, "pkg-ipv4")
		default:
			out = append(out, "other")
		}
	}
	return out
}

func TestGuestPlan(t *testing.T) {
	cases := []struct {
		name       string
		snap       snapshot.Snapshot
		findings   []diagnose.Finding
		opts       GuestOptions
		want       []string
		hostSide   []diagnose.Code
		skipped    []diagnose.Code
		leaseMACs  []snapshot.MAC
		neighMACs  []snapshot.MAC
		wantErrSub string
	}{
		{name: "healthy guest: empty plan", snap: world(), want: nil},
		{name: "profile bound to missing name, no MAC: every eligible NIC gets a profile",
			snap: world(), findings: []diagnose.Finding{f(diagnose.CodeGuestProfileWrongInterface, "", "interface_name=eth0")},
			want:      []string{"remove-conflicts " + mac1, "ensure " + mac1 + " UNSPECIFIED", "remove-conflicts " + mac2, "ensure " + mac2 + " UNSPECIFIED"},
			leaseMACs: []snapshot.MAC{mac1}, neighMACs: []snapshot.MAC{mac2}},
		{name: "no ipv4 on one NIC", snap: world(), findings: []diagnose.Finding{f(diagnose.CodeGuestNoIPv4, mac1)},
			want: []string{"remove-conflicts " + mac1, "ensure " + mac1 + " UNSPECIFIED"}, leaseMACs: []snapshot.MAC{mac1}},
		{name: "no lease", snap: world(), findings: []diagnose.Finding{f(diagnose.CodeGuestNoLease, mac1)},
			want: []string{"remove-conflicts " + mac1, "ensure " + mac1 + " UNSPECIFIED"}, leaseMACs: []snapshot.MAC{mac1}},
		{name: "DNS failure in the guest's resolver: the DHCP profile takes the network's DNS", snap: world(),
			findings: []diagnose.Finding{f(diagnose.CodeGuestDNSFailure, mac1, "side=guest")},
			want:     []string{"remove-conflicts " + mac1, "ensure " + mac1 + " UNSPECIFIED"}, leaseMACs: []snapshot.MAC{mac1}},
		{name: "DNS set by hand in the profile, without consent: skipped, saying which flag", snap: world(),
			findings: []diagnose.Finding{f(diagnose.CodeGuestDNSFailure, mac1, "side=guest", "dns_override=true")},
			want:     nil, skipped: []diagnose.Code{diagnose.CodeGuestDNSFailure}},
		{name: "DNS set by hand in the profile, with consent: the DHCP profile takes the network's DNS", snap: world(),
			findings: []diagnose.Finding{f(diagnose.CodeGuestDNSFailure, mac1, "side=guest", "dns_override=true")},
			opts:     GuestOptions{AllowDNSReset: true},
			want:     []string{"remove-conflicts " + mac1, "ensure " + mac1 + " UNSPECIFIED"}, leaseMACs: []snapshot.MAC{mac1}},
		{name: "DNS failure at dnsmasq: nothing in the guest", snap: world(),
			findings: []diagnose.Finding{f(diagnose.CodeGuestDNSFailure, mac1, "side=host")}, hostSide: []diagnose.Code{diagnose.CodeGuestDNSFailure}},
		{name: "link down in the guest: the profile brings it up", snap: world(),
			findings: []diagnose.Finding{f(diagnose.CodeGuestNICLinkDown, mac1, "side=guest")},
			want:     []string{"remove-conflicts " + mac1, "ensure " + mac1 + " UNSPECIFIED"}, leaseMACs: []snapshot.MAC{mac1}},
		{name: "lease mismatch", snap: world(), findings: []diagnose.Finding{f(diagnose.CodeGuestIPLeaseMismatch, mac1)},
			want: []string{"remove-conflicts " + mac1, "ensure " + mac1 + " UNSPECIFIED"}, leaseMACs: []snapshot.MAC{mac1}},
		{name: "ipv6 unroutable + apt risk: disable ipv6, force ipv4",
			snap:     world(),
			findings: []diagnose.Finding{f(diagnose.CodeGuestIPv6Unroutable, ""), f(diagnose.CodeGuestAptIPv6Risk, "")},
			want:     []string{"ipv6-disable", "pkg-ipv4"}},
		{name: "wrong interface and ipv6: profile created with ipv6 disabled",
			snap:      world(),
			findings:  []diagnose.Finding{f(diagnose.CodeGuestProfileWrongInterface, mac1), f(diagnose.CodeGuestIPv6Unroutable, "")},
			want:      []string{"remove-conflicts " + mac1, "ensure " + mac1 + " DISABLED", "ipv6-disable", "pkg-ipv4"},
			leaseMACs: []snapshot.MAC{mac1}},
		{name: "kvmnet's name taken by someone else's profile, without consent: the NIC is left alone",
			snap: world(), findings: []diagnose.Finding{f(diagnose.CodeGuestNoIPv4, mac1), f(diagnose.CodeGuestProfileNameTaken, mac1, "profile=kvm-dhcp-enp1s0", "uuid=f0")},
			want: nil, skipped: []diagnose.Code{diagnose.CodeGuestNoIPv4, diagnose.CodeGuestProfileNameTaken}},
		{name: "kvmnet's name taken, other NIC still fixed",
			snap: world(), findings: []diagnose.Finding{f(diagnose.CodeGuestNoIPv4, mac2), f(diagnose.CodeGuestProfileNameTaken, mac1, "profile=kvm-dhcp-enp1s0", "uuid=f0")},
			want: []string{"remove-conflicts " + mac2, "ensure " + mac2 + " UNSPECIFIED"}, skipped: []diagnose.Code{diagnose.CodeGuestProfileNameTaken}, neighMACs: []snapshot.MAC{mac2}},
		{name: "kvmnet's name taken, with consent: replaced by kvmnet's own",
			snap: world(), findings: []diagnose.Finding{f(diagnose.CodeGuestNoIPv4, mac1), f(diagnose.CodeGuestProfileNameTaken, mac1, "profile=kvm-dhcp-enp1s0", "uuid=f0")},
			opts: GuestOptions{ReplaceForeignProfile: true},
			want: []string{"remove-conflicts " + mac1, "ensure " + mac1 + " UNSPECIFIED"}, leaseMACs: []snapshot.MAC{mac1}},
		{name: "static wrong subnet without consent: skipped",
			snap: world(), findings: []diagnose.Finding{f(diagnose.CodeGuestStaticWrongSubnet, mac1)},
			want: nil, skipped: []diagnose.Code{diagnose.CodeGuestStaticWrongSubnet}},
		{name: "static wrong subnet with consent: DHCP",
			snap: world(), findings: []diagnose.Finding{f(diagnose.CodeGuestStaticWrongSubnet, mac1)},
			opts: GuestOptions{AllowStaticToDHCP: true},
			want: []string{"remove-conflicts " + mac1, "ensure " + mac1 + " UNSPECIFIED"}, leaseMACs: []snapshot.MAC{mac1}},
		{name: "--nic restricts the plan",
			snap:     world(),
			findings: []diagnose.Finding{f(diagnose.CodeGuestNoIPv4, mac1), f(diagnose.CodeGuestNoIPv4, mac2)},
			opts:     GuestOptions{MAC: strings.ToUpper(mac2)},
			want:     []string{"remove-conflicts " + mac2, "ensure " + mac2 + " UNSPECIFIED"}, neighMACs: []snapshot.MAC{mac2}},
		{name: "host-side causes are not fixed in the guest",
			snap: world(),
			findings: []diagnose.Finding{f(diagnose.CodeUFWRoutedBlocked, ""), f(diagnose.CodeNetworkInactive, ""),
				f(diagnose.CodeForwardPolicyDrop, ""), f(diagnose.CodeGuestEgressBlocked, mac1), f(diagnose.CodeGuestNICLinkDown, mac1)},
			want: nil,
			hostSide: []diagnose.Code{diagnose.CodeUFWRoutedBlocked, diagnose.CodeNetworkInactive, diagnose.CodeForwardPolicyDrop,
				diagnose.CodeGuestEgressBlocked, diagnose.CodeGuestNICLinkDown}},
		{name: "agent-side findings are skipped with a reason", snap: world(),
			findings: []diagnose.Finding{f(diagnose.CodeQemuGuestAgentMissing, "")}, skipped: []diagnose.Code{diagnose.CodeQemuGuestAgentMissing}},
		{name: "host findings on the guest's network are named; others are not", snap: world(),
			findings: []diagnose.Finding{
				{Code: diagnose.CodeNetworkInactive, Severity: diagnose.SeverityError, Network: "default"},
				{Code: diagnose.CodeNetworkInactive, Severity: diagnose.SeverityError, Network: "elsewhere"},
				{Code: diagnose.CodeIPForwardOff, Severity: diagnose.SeverityError},
			},
			hostSide: []diagnose.Code{diagnose.CodeNetworkInactive, diagnose.CodeIPForwardOff}},
		{name: "findings of other guests are ignored", snap: world(),
			findings: []diagnose.Finding{{Code: diagnose.CodeGuestNoIPv4, Domain: "vm2", MAC: mac1}}, want: nil},
		{name: "user-mode NIC is not eligible", snap: world(func(s *snapshot.Snapshot) {
			s.Domains[0].NICs = append(s.Domains[0].NICs, snapshot.DomainNIC{MAC: "52:54:00:00:00:03", Type: "user"})
		}), findings: []diagnose.Finding{f(diagnose.CodeGuestNoIPv4, "52:54:00:00:00:03")},
			skipped: []diagnose.Code{diagnose.CodeGuestNoIPv4}},
		// Bad input: each a clear error, no plan.
		{name: "unknown domain", snap: world(), opts: GuestOptions{Domain: "nope"}, wantErrSub: `domain not found: "nope"`},
		{name: "no kvmnet agent, qemu-guest-agent answers: install-agent", snap: world(func(s *snapshot.Snapshot) {
			s.Guests[0] = snapshot.Guest{Domain: "vm1", Transport: snapshot.TransportNone, QGA: &snapshot.QGAView{Answered: true}}
		}), wantErrSub: "run `kvmnetctl guests install-agent vm1`, then `kvmnetctl guests fix vm1` again"},
		{name: "domain shut off", snap: world(func(s *snapshot.Snapshot) { s.Domains[0].State = "shut off" }), wantErrSub: "virsh start vm1"},
		{name: "MAC not in domain", snap: world(), opts: GuestOptions{MAC: "52:54:00:99:99:99"}, wantErrSub: "has no NIC with MAC 52:54:00:99:99:99"},
		{name: "no agent channel", snap: world(func(s *snapshot.Snapshot) { s.Guests[0].Transport = snapshot.TransportNone }),
			wantErrSub: "kvmnetctl guests enable-channel vm1"},
		{name: "agent unreachable", snap: world(func(s *snapshot.Snapshot) { s.Guests[0].Reachable = false; s.Guests[0].Error = "deadline exceeded" }),
			wantErrSub: "does not answer"},
		{name: "report-only agent", snap: world(func(s *snapshot.Snapshot) { s.Guests[0].State.Config.AllowApply = false }),
			wantErrSub: "allow_apply: false"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.opts.Domain == "" {
				tc.opts.Domain = "vm1"
			}
			p, err := Guest(tc.snap, tc.findings, tc.opts)
			if tc.wantErrSub != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErrSub) {
					t.Fatalf("error = %v, want it to contain %q", err, tc.wantErrSub)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := actions(p.Request); !slices.Equal(got, tc.want) {
				t.Errorf("actions:\n got %q\nwant %q", got, tc.want)
			}
			if len(p.Steps) != len(p.Request.GetActions()) {
				t.Errorf("%d steps for %d actions", len(p.Steps), len(p.Request.GetActions()))
			}
			if got := codesOf(p.HostSide); !slices.Equal(got, tc.hostSide) {
				t.Errorf("host side = %v, want %v", got, tc.hostSide)
			}
			var sk []diagnose.Code
			for _, s := range p.Skipped {
				sk = append(sk, s.Finding.Code)
				if s.Reason == "" {
					t.Errorf("skipped %s without a reason", s.Finding.Code)
				}
			}
			if !slices.Equal(sk, tc.skipped) {
				t.Errorf("skipped = %v, want %v", sk, tc.skipped)
			}
			if !slices.Equal(p.Verify.LeaseMACs, tc.leaseMACs) || !slices.Equal(p.Verify.NeighborMACs, tc.neighMACs) {
				t.Errorf("verify leases %v neighbours %v, want %v %v", p.Verify.LeaseMACs, p.Verify.NeighborMACs, tc.leaseMACs, tc.neighMACs)
			}
			if p.Request.GetRollbackTimeoutSeconds() != 60 {
				t.Errorf("rollback timeout = %d, want the 60 s default", p.Request.GetRollbackTimeoutSeconds())
			}
		})
	}
}

func TestGuestPlanVerificationChecks(t *testing.T) {
	p, err := Guest(world(), []diagnose.Finding{f(diagnose.CodeGuestNoIPv4, mac1)},
		GuestOptions{Domain: "vm1", CheckURLs: []string{"http://deb.debian.org/debian/"}, CheckDNSName: "example.org"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range p.Verify.Checks {
		got = append(got, c.GetName()+" "+c.GetKind().String()+" "+c.GetTarget())
	}
	want := []string{
		"gateway-v4 CHECK_KIND_PING ",
		"dns-v4 CHECK_KIND_DNS example.org",
		"dnsmasq-tcp CHECK_KIND_TCP 192.168.122.1:53",
		"http-v4 CHECK_KIND_HTTP http://deb.debian.org/debian/",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("checks:\n got %q\nwant %q", got, want)
	}
}

func codesOf(fs []diagnose.Finding) []diagnose.Code {
	var out []diagnose.Code
	for _, f := range fs {
		out = append(out, f.Code)
	}
	return out
}

func TestHostPlan(t *testing.T) {
	hostF := func(code diagnose.Code, network string, ev ...string) diagnose.Finding {
		return diagnose.Finding{Code: code, Severity: diagnose.SeverityError, Network: network, Evidence: ev, Fix: "manual step"}
	}
	type step struct {
		kind    HostStepKind
		network string
	}
	cases := []struct {
		name     string
		snap     snapshot.Snapshot
		findings []diagnose.Finding
		only     []diagnose.Code
		want     []step
		manual   []diagnose.Code
		guest    []diagnose.Code
		wantErr  string
	}{
		{name: "nothing to do", snap: world()},
		{name: "default network missing: define, start, autostart", snap: world(),
			findings: []diagnose.Finding{hostF(diagnose.CodeNetworkMissing, "default")},
			want:     []step{{StepDefineDefaultNetwork, "default"}, {StepStartNetwork, "default"}, {StepAutostartNetwork, "default"}}},
		{name: "a missing custom network is manual", snap: world(),
			findings: []diagnose.Finding{hostF(diagnose.CodeNetworkMissing, "lab2")}, manual: []diagnose.Code{diagnose.CodeNetworkMissing}},
		{name: "inactive without autostart: start and autostart",
			snap:     world(func(s *snapshot.Snapshot) { s.Networks[0].Active = false; s.Networks[0].Autostart = false }),
			findings: []diagnose.Finding{hostF(diagnose.CodeNetworkInactive, "default"), hostF(diagnose.CodeNetworkAutostartOff, "default")},
			want:     []step{{StepStartNetwork, "default"}, {StepAutostartNetwork, "default"}}},
		{name: "ip_forward off", snap: world(), findings: []diagnose.Finding{hostF(diagnose.CodeIPForwardOff, "")},
			want: []step{{StepEnableIPForward, ""}}},
		{name: "rules missing, masquerade missing, dnsmasq down: one restart",
			snap: world(),
			findings: []diagnose.Finding{hostF(diagnose.CodeLibvirtRulesMissing, "default"), hostF(diagnose.CodeNATMasqueradeMissing, "default"),
				hostF(diagnose.CodeDnsmasqDown, "default")},
			want: []step{{StepRestartNetwork, "default"}}},
		{name: "host-wide rules missing restarts each NAT network, not the bridged one", snap: world(),
			findings: []diagnose.Finding{hostF(diagnose.CodeLibvirtRulesMissing, "")}, want: []step{{StepRestartNetwork, "default"}}},
		{name: "ufw routed blocked", snap: world(), findings: []diagnose.Finding{hostF(diagnose.CodeUFWRoutedBlocked, "default")},
			want: []step{{StepUFWRouteAllow, "default"}}},
		{name: "docker forward drop", snap: world(func(s *snapshot.Snapshot) { s.Firewall.Docker = true }),
			findings: []diagnose.Finding{hostF(diagnose.CodeForwardPolicyDrop, "default")}, want: []step{{StepDockerUserAccept, "default"}}},
		{name: "forward drop without docker is manual", snap: world(),
			findings: []diagnose.Finding{hostF(diagnose.CodeForwardPolicyDrop, "default")}, manual: []diagnose.Code{diagnose.CodeForwardPolicyDrop}},
		{name: "firewalld zone missing: one binding step per network it names", snap: world(),
			findings: []diagnose.Finding{{Code: diagnose.CodeFirewalldZoneMissing, Evidence: []string{"networks=default"}}},
			want:     []step{{StepFirewalldZone, "default"}}},
		{name: "firewalld policy reject with virbr0 in libvirt's zone",
			snap: world(func(s *snapshot.Snapshot) {
				s.Firewall.Firewalld.InterfaceZones = map[string]string{"virbr0": "libvirt"}
			}),
			findings: []diagnose.Finding{hostF(diagnose.CodeFirewalldPolicyRejectForward, "default")},
			want:     []step{{StepFirewalldPolicyAccept, "default"}}},
		{name: "firewalld policy reject with virbr0 in public is manual",
			snap: world(func(s *snapshot.Snapshot) {
				s.Firewall.Firewalld.InterfaceZones = map[string]string{"virbr0": "public"}
			}),
			findings: []diagnose.Finding{hostF(diagnose.CodeFirewalldPolicyRejectForward, "default")},
			manual:   []diagnose.Code{diagnose.CodeFirewalldPolicyRejectForward}},
		{name: "channel exposed", snap: world(),
			findings: []diagnose.Finding{{Code: diagnose.CodeChannelSocketExposed, Domain: "vm1"}}, want: []step{{StepMoveChannel, ""}}},
		{name: "host link down is a host step; guest link down is the guest's",
			snap: world(),
			findings: []diagnose.Finding{f(diagnose.CodeGuestNICLinkDown, mac1, "side=host"), f(diagnose.CodeGuestNICLinkDown, mac2, "side=guest"),
				f(diagnose.CodeGuestProfileWrongInterface, "")},
			want: []step{{StepLinkUp, ""}}, guest: []diagnose.Code{diagnose.CodeGuestNICLinkDown, diagnose.CodeGuestProfileWrongInterface}},
		{name: "order: define before ip_forward before firewall", snap: world(),
			findings: []diagnose.Finding{hostF(diagnose.CodeUFWRoutedBlocked, "default"), hostF(diagnose.CodeIPForwardOff, ""), hostF(diagnose.CodeNetworkMissing, "default")},
			want: []step{{StepDefineDefaultNetwork, "default"}, {StepStartNetwork, "default"}, {StepAutostartNetwork, "default"},
				{StepEnableIPForward, ""}, {StepUFWRouteAllow, "default"}}},
		{name: "--only filters", snap: world(),
			findings: []diagnose.Finding{hostF(diagnose.CodeUFWRoutedBlocked, "default"), hostF(diagnose.CodeIPForwardOff, "")},
			only:     []diagnose.Code{diagnose.CodeIPForwardOff}, want: []step{{StepEnableIPForward, ""}}},
		{name: "--only with an unknown code", snap: world(), only: []diagnose.Code{"guest_no_ipv4"}, wantErr: "not a host-fixable code"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Host(tc.snap, tc.findings, tc.only)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []step
			for _, s := range p.Steps {
				got = append(got, step{s.Kind, s.Network})
				if s.Summary == "" || len(s.Codes) == 0 {
					t.Errorf("step %s lacks summary or codes: %+v", s.Kind, s)
				}
				if s.Kind == StepUFWRouteAllow && (s.Bridge != "virbr0" || s.Uplink != "eth0" || s.Subnet != "192.168.122.0/24") {
					t.Errorf("ufw step parameters: %+v", s)
				}
				if s.Kind == StepRestartNetwork && s.Warning == "" {
					t.Errorf("restart without a warning about the DHCP blip")
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("steps:\n got %v\nwant %v", got, tc.want)
			}
			if c := codesOf(p.Manual); !slices.Equal(c, tc.manual) {
				t.Errorf("manual = %v, want %v", c, tc.manual)
			}
			if c := codesOf(p.GuestSide); !slices.Equal(c, tc.guest) {
				t.Errorf("guest side = %v, want %v", c, tc.guest)
			}
		})
	}
}

// TestGuestPlanNameTakenSaysWhatToDo: the skip reason for a NIC whose kvmnet profile name is held by
// someone else's profile names that profile and carries the finding's by-hand commands and flag.
func TestGuestPlanNameTakenSaysWhatToDo(t *testing.T) {
	taken := f(diagnose.CodeGuestProfileNameTaken, mac1, "profile=kvm-dhcp-enp1s0", "uuid=f0")
	taken.Fix = "in the guest, rename it (nmcli connection modify f0 connection.id NEW-NAME) or delete it (nmcli connection delete f0); or let kvmnet replace it with its own: kvmnetctl guests fix vm1 --nic " + mac1 + " " + diagnose.ReplaceForeignProfileFlag
	p, err := Guest(world(), []diagnose.Finding{f(diagnose.CodeGuestNoIPv4, mac1), taken}, GuestOptions{Domain: "vm1"})
	if err != nil {
		t.Fatal(err)
	}
	if !p.Empty() || len(p.Skipped) != 2 {
		t.Fatalf("plan %v, skipped %+v", actions(p.Request), p.Skipped)
	}
	for _, sk := range p.Skipped {
		for _, want := range []string{`profile "kvm-dhcp-enp1s0" (uuid f0)`, "nmcli connection modify f0", "nmcli connection delete f0", diagnose.ReplaceForeignProfileFlag} {
			if !strings.Contains(sk.Reason, want) {
				t.Errorf("%s skipped: reason lacks %q: %s", sk.Finding.Code, want, sk.Reason)
			}
		}
	}
}
