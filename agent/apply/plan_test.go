package apply

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	gonm "github.com/Wifx/gonetworkmanager/v2"
	"github.com/godbus/dbus/v5"
	"github.com/kvmnet/kvmnet/agent/managedfile"
	"github.com/kvmnet/kvmnet/agent/nm"
	"github.com/kvmnet/kvmnet/agent/pkgconf"
	"github.com/kvmnet/kvmnet/agent/sysctl"
)

const (
	mac1 = "52:54:00:00:00:01"
	mac2 = "52:54:00:00:00:02"
)

func baseInputs() Inputs {
	return Inputs{
		NICs: []NIC{{Name: "enp1s0", MAC: mac1}, {Name: "ens3", MAC: mac2}},
		NM: nm.State{Status: nm.Status{Running: true, Version: "1.42.4"}, Devices: []nm.Device{
			{Path: "/d/1", Interface: "enp1s0", MAC: mac1, Type: gonm.NmDeviceTypeEthernet, State: gonm.NmDeviceStateDisconnected, Managed: true},
			{Path: "/d/2", Interface: "ens3", MAC: mac2, Type: gonm.NmDeviceTypeVeth, State: gonm.NmDeviceStateDisconnected, Managed: true},
		}},
		Files:  map[string][]byte{},
		Sysctl: map[string]string{SysctlKeys[0]: "0", SysctlKeys[1]: "0"},
	}
}

func kvmProfile(ifname string, active bool) nm.Profile {
	p := nm.Profile{Path: dbus.ObjectPath("/c/kvm-" + ifname), ID: "kvm-dhcp-" + ifname, UUID: "u-kvm-" + ifname, Type: nm.EthernetType,
		InterfaceName: ifname, IPv4Method: "auto", IPv6Method: "auto", Autoconnect: true, ManagedByKvmnet: true}
	if active {
		p.Active, p.ActiveDevice = true, ifname
	}
	return p
}

type stepWant struct {
	kind   OpKind
	target string
}

func steps(p *Plan) []stepWant {
	var out []stepWant
	for _, s := range p.Steps {
		out = append(out, stepWant{s.Kind, s.Change.Target})
	}
	return out
}

func TestCompute(t *testing.T) {
	eth0 := nm.Profile{Path: "/c/eth0", ID: "Wired eth0", UUID: "u-eth0", Type: nm.EthernetType, InterfaceName: "eth0", IPv4Method: "auto", Autoconnect: true, BoundToMissingInterface: true}
	userEnp := nm.Profile{Path: "/c/user", ID: "office-static", UUID: "u-static", Type: nm.EthernetType, InterfaceName: "enp1s0", IPv4Method: "manual", Active: true, ActiveDevice: "enp1s0", Autoconnect: true}
	byMAC := nm.Profile{Path: "/c/bymac", ID: "Wired by MAC", UUID: "u-mac", Type: nm.EthernetType, MAC: mac1, IPv4Method: "auto", Autoconnect: true}
	ens3Own := nm.Profile{Path: "/c/ens3", ID: "ens3 profile", UUID: "u-ens3", Type: nm.EthernetType, InterfaceName: "ens3", IPv4Method: "auto", Autoconnect: true}
	bridge := nm.Profile{Path: "/c/br", ID: "br9", UUID: "u-br", Type: "bridge", InterfaceName: "br9"}
	leased := func(in Inputs) Inputs { in.NM.Devices[0].IPv4 = []string{"10.77.0.115/24"}; return in }
	withProfiles := func(in Inputs, ps ...nm.Profile) Inputs { in.NM.Profiles = ps; return in }
	req := func(acts ...Action) Request { return Request{Actions: acts, RollbackTimeout: time.Minute} }
	ens := func(mac, v6 string) Action {
		return Action{Ensure: &EnsureAction{MAC: mac, IPv6Method: v6, WaitIPv4: 30 * time.Second}}
	}
	rm := func(mac string) Action { return Action{RemoveConflicts: &RemoveConflictsAction{MAC: mac}} }
	yes, no := true, false

	tests := []struct {
		name    string
		in      Inputs
		req     Request
		want    []stepWant
		wantErr error
		errHas  string
		notes   string
	}{
		{"fresh NIC: create and activate", baseInputs(), req(ens(mac1, "")),
			[]stepWant{{OpAddProfile, "kvm-dhcp-enp1s0"}, {OpActivate, "kvm-dhcp-enp1s0"}}, nil, "", ""},
		{"MAC in upper case matches", baseInputs(), req(ens(strings.ToUpper(mac2), "ignore")),
			[]stepWant{{OpAddProfile, "kvm-dhcp-ens3"}, {OpActivate, "kvm-dhcp-ens3"}}, nil, "", ""},
		{"second apply is a no-op", leased(withProfiles(baseInputs(), kvmProfile("enp1s0", true))), req(ens(mac1, "auto"), rm(mac1)),
			nil, nil, "", "already active on enp1s0 with 10.77.0.115/24"},
		{"active but no address: reactivate", withProfiles(baseInputs(), kvmProfile("enp1s0", true)), req(ens(mac1, "")),
			[]stepWant{{OpActivate, "kvm-dhcp-enp1s0"}}, nil, "", ""},
		{"ipv6 method change updates and reactivates", leased(withProfiles(baseInputs(), kvmProfile("enp1s0", true))), req(ens(mac1, "disabled")),
			[]stepWant{{OpUpdateProfile, "kvm-dhcp-enp1s0"}, {OpActivate, "kvm-dhcp-enp1s0"}}, nil, "", ""},
		{"stale eth0 replaced", withProfiles(baseInputs(), eth0), req(rm(mac1), ens(mac1, "")),
			[]stepWant{{OpDeleteProfile, "Wired eth0"}, {OpAddProfile, "kvm-dhcp-enp1s0"}, {OpActivate, "kvm-dhcp-enp1s0"}}, nil, "", ""},
		{"conflicts on the same NIC by name, MAC and activity; other NIC untouched", withProfiles(baseInputs(), userEnp, byMAC, ens3Own, bridge), req(ens(mac1, ""), rm(mac1)),
			[]stepWant{{OpAddProfile, "kvm-dhcp-enp1s0"}, {OpActivate, "kvm-dhcp-enp1s0"}, {OpDeleteProfile, "office-static"}, {OpDeleteProfile, "Wired by MAC"}}, nil, "", ""},
		{"remove keeps the kvm-dhcp profile", leased(withProfiles(baseInputs(), kvmProfile("enp1s0", true))), req(rm(mac1)), nil, nil, "", ""},
		{"non-ethernet kvm-dhcp id replaced", withProfiles(baseInputs(), func() nm.Profile { p := kvmProfile("enp1s0", false); p.Type = "bridge"; return p }()), req(ens(mac1, "")),
			[]stepWant{{OpDeleteProfile, "kvm-dhcp-enp1s0"}, {OpAddProfile, "kvm-dhcp-enp1s0"}, {OpActivate, "kvm-dhcp-enp1s0"}}, nil, "", ""},
		{"unmarked kvm-dhcp profile is not adopted", withProfiles(baseInputs(), func() nm.Profile { p := kvmProfile("enp1s0", true); p.ManagedByKvmnet = false; return p }()), req(ens(mac1, "")),
			nil, ErrPrecondition, `profile "kvm-dhcp-enp1s0" (uuid u-kvm-enp1s0) has the name kvmnet uses but not its marker (managed_by_kvmnet=false`, ""},
		{"unmarked kvm-dhcp profile replaced as a conflict", withProfiles(baseInputs(), func() nm.Profile { p := kvmProfile("enp1s0", true); p.ManagedByKvmnet = false; return p }()), req(rm(mac1), ens(mac1, "")),
			[]stepWant{{OpDeleteProfile, "kvm-dhcp-enp1s0"}, {OpAddProfile, "kvm-dhcp-enp1s0"}, {OpActivate, "kvm-dhcp-enp1s0"}}, nil, "", ""},
		{"unknown MAC: nothing planned", withProfiles(baseInputs(), eth0), req(rm(mac1), ens("52:54:00:00:00:09", "")),
			nil, ErrPrecondition, "no interface with MAC 52:54:00:00:00:09 in the guest (it has: enp1s0=52:54:00:00:00:01 ens3=52:54:00:00:00:02)", ""},
		{"NetworkManager not running", func() Inputs { in := baseInputs(); in.NMErr = nm.ErrNotRunning; return in }(), req(ens(mac1, "")),
			nil, ErrPrecondition, "NetworkManager is not running", ""},
		{"unmanaged device", func() Inputs { in := baseInputs(); in.NM.Devices[0].Managed = false; return in }(), req(ens(mac1, "")),
			nil, ErrPrecondition, "does not manage enp1s0", ""},
		{"disable IPv6", baseInputs(), req(Action{SetIPv6: &yes}),
			[]stepWant{{OpWriteFile, SysctlFile}, {OpSetSysctl, SysctlKeys[0]}, {OpSetSysctl, SysctlKeys[1]}}, nil, "", ""},
		{"disable IPv6 again: no-op", func() Inputs {
			in := baseInputs()
			in.Files[SysctlFile] = managedfile.WithHeader(sysctl.RenderDisable())
			in.Sysctl = map[string]string{SysctlKeys[0]: "1", SysctlKeys[1]: "1"}
			return in
		}(), req(Action{SetIPv6: &yes}), nil, nil, "", "already disables IPv6"},
		{"enable IPv6 removes kvmnet's file", func() Inputs {
			in := baseInputs()
			in.Files[SysctlFile] = managedfile.WithHeader(sysctl.RenderDisable())
			in.Managed = []ManagedFile{{Path: SysctlFile}}
			in.Sysctl = map[string]string{SysctlKeys[0]: "1", SysctlKeys[1]: "1"}
			return in
		}(), req(Action{SetIPv6: &no}), []stepWant{{OpRemoveFile, SysctlFile}, {OpSetSysctl, SysctlKeys[0]}, {OpSetSysctl, SysctlKeys[1]}}, nil, "", ""},
		{"force IPv4 with apt and dnf", func() Inputs {
			in := baseInputs()
			in.AptInstalled, in.DnfInstalled = true, true
			in.Files[DnfFile] = []byte("[main]\ngpgcheck=1\n")
			return in
		}(), req(Action{ForceIPv4: &yes}), []stepWant{{OpWriteFile, AptFile}, {OpWriteFile, DnfFile}}, nil, "", ""},
		{"undo force on a dnf.conf kvmnet changed restores it", func() Inputs {
			in := baseInputs()
			in.DnfInstalled = true
			in.Files[DnfFile] = managedfile.WithHeader([]byte("[main]\nip_resolve=4\n"))
			in.Managed = []ManagedFile{{Path: DnfFile, Existed: true}}
			return in
		}(), req(Action{ForceIPv4: &no}), []stepWant{{OpRestoreFile, DnfFile}}, nil, "", ""},
		{"apt file of someone else left alone", func() Inputs {
			in := baseInputs()
			in.AptInstalled = true
			in.Files[AptFile] = []byte("Acquire::ForceIPv4 \"true\";\n")
			return in
		}(), req(Action{ForceIPv4: &no}), nil, nil, "", "is not kvmnet's"},
		{"restore backups", func() Inputs {
			in := baseInputs()
			in.Files[AptFile] = managedfile.WithHeader(pkgconf.RenderApt())
			in.Files[DnfFile] = managedfile.WithHeader([]byte("[main]\nip_resolve=4\n"))
			in.Managed = []ManagedFile{{Path: DnfFile, Existed: true}, {Path: AptFile}}
			return in
		}(), req(Action{RestoreBackups: true}), []stepWant{{OpRemoveFile, AptFile}, {OpRestoreFile, DnfFile}}, nil, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Compute(tc.req, tc.in)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.errHas) || p != nil {
					t.Fatalf("err = %v plan=%v, want %v containing %q and no plan", err, p, tc.wantErr, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := steps(p); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("steps:\n got %v\nwant %v\nchanges: %s", got, tc.want, dump(p))
			}
			if tc.notes != "" && !strings.Contains(strings.Join(p.Notes, "\n"), tc.notes) {
				t.Fatalf("notes %q lack %q", p.Notes, tc.notes)
			}
			for _, s := range p.Steps {
				if s.Change.Summary == "" || (s.Kind != OpActivate && s.Change.Diff == "") {
					t.Errorf("change without summary or diff: %+v", s.Change)
				}
			}
		})
	}
}

func dump(p *Plan) string {
	var sb strings.Builder
	for _, c := range p.Changes() {
		fmt.Fprintf(&sb, "\n  %s %s: %s\n%s", c.Kind, c.Target, c.Summary, c.Diff)
	}
	return sb.String()
}

func TestComputeDiffsAreReadable(t *testing.T) {
	in := baseInputs()
	cur := kvmProfile("enp1s0", true)
	cur.IPv4Method = "manual"
	in.NM.Profiles = []nm.Profile{cur}
	p, err := Compute(Request{Actions: []Action{{Ensure: &EnsureAction{MAC: mac1, IPv6Method: "disabled", WaitIPv4: time.Second}}}}, in)
	if err != nil {
		t.Fatal(err)
	}
	want := "ipv4.method: \"manual\" -> \"auto\"\nipv6.method: \"auto\" -> \"disabled\"\n"
	if p.Steps[0].Change.Diff != want {
		t.Fatalf("diff %q, want %q", p.Steps[0].Change.Diff, want)
	}
	in = baseInputs()
	in.Files[DnfFile] = []byte("[main]\ngpgcheck=1\n")
	in.DnfInstalled = true
	yes := true
	p, _ = Compute(Request{Actions: []Action{{ForceIPv4: &yes}}}, in)
	if d := p.Steps[0].Change.Diff; !strings.Contains(d, "+ip_resolve=4\n") || !strings.Contains(d, " gpgcheck=1\n") || !strings.Contains(d, "+# managed by kvmnet") {
		t.Fatalf("dnf diff:\n%s", d)
	}
}
