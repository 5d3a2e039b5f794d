package nm

import (
	"reflect"
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"
)

func TestDHCPSpecDiff(t *testing.T) {
	spec := DHCPSpec{InterfaceName: "enp1s0", MAC: "52:54:00:aa:bb:01", IPv6Method: "disabled"}
	good := Profile{ID: "kvm-dhcp-enp1s0", Type: EthernetType, InterfaceName: "enp1s0", Autoconnect: true,
		IPv4Method: "auto", IPv6Method: "disabled", ManagedByKvmnet: true}
	tests := []struct {
		name string
		spec DHCPSpec
		p    Profile
		want []string
	}{
		{"satisfied", spec, good, nil},
		{"missing profile lists everything", spec, Profile{}, []string{"connection.id", "connection.type",
			"connection.interface-name", "connection.autoconnect", "ipv4.method", "ipv6.method", "user.data.org.kvmnet.managed-by"}},
		{"manual ipv4", spec, with(good, func(p *Profile) { p.IPv4Method = "manual" }), []string{"ipv4.method"}},
		{"static ipv4 in the wrong subnet", spec, with(good, func(p *Profile) {
			p.IPv4Method, p.IPv4Addresses, p.IPv4Gateway, p.IPv4DNS = "manual", []string{"192.168.100.50/24"}, "192.168.100.1", []string{"192.168.100.1"}
		}), []string{"ipv4.method", "ipv4.address-data", "ipv4.gateway", "ipv4.dns"}},
		{"autoconnect off", spec, with(good, func(p *Profile) { p.Autoconnect = false }), []string{"connection.autoconnect"}},
		{"bound to other MAC", spec, with(good, func(p *Profile) { p.MAC = "52:54:00:00:00:09" }), []string{"802-3-ethernet.mac-address"}},
		{"bound to same MAC upper case", spec, with(good, func(p *Profile) { p.MAC = "52:54:00:AA:BB:01" }), nil},
		{"ipv6 left alone when unspecified", DHCPSpec{InterfaceName: "enp1s0"}, with(good, func(p *Profile) { p.IPv6Method = "auto" }), nil},
		{"hand-made kvm-dhcp profile gets the mark", spec, with(good, func(p *Profile) { p.ManagedByKvmnet = false }), []string{"user.data.org.kvmnet.managed-by"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var keys []string
			for _, f := range tc.spec.Diff(tc.p) {
				keys = append(keys, f.Key)
			}
			if !reflect.DeepEqual(keys, tc.want) {
				t.Fatalf("Diff keys = %v, want %v", keys, tc.want)
			}
		})
	}
}

func with(p Profile, f func(*Profile)) Profile { f(&p); return p }

func TestNewSettingsRoundTrip(t *testing.T) {
	spec := DHCPSpec{InterfaceName: "ens3", MAC: "52:54:00:AA:BB:02", IPv6Method: "ignore"}
	s := spec.NewSettings("0b8c0f6e-0000-4000-8000-000000000001")
	p := ParseProfile("/x", s)
	if len(spec.Diff(p)) != 0 {
		t.Fatalf("a fresh profile does not satisfy its own spec: %v (%s)", spec.Diff(p), p)
	}
	if got := s["user"]["data"].Value().(map[string]string)[MACKey]; got != "52:54:00:aa:bb:02" {
		t.Fatalf("mac evidence %q", got)
	}
	if _, ok := s[EthernetType]["mac-address"]; ok {
		t.Fatal("new profile must bind by interface-name only")
	}
}

func TestUpdateSettingsDropsDeprecatedAndKeepsOthers(t *testing.T) {
	old := Settings{
		"connection": {"id": dbus.MakeVariant("kvm-dhcp-enp1s0"), "uuid": dbus.MakeVariant("u"),
			"type": dbus.MakeVariant(EthernetType), "interface-name": dbus.MakeVariant("enp1s0"),
			"autoconnect": dbus.MakeVariant(false)},
		EthernetType: {"mac-address": dbus.MakeVariant([]byte{0x52, 0x54, 0, 0, 0, 9}), "mtu": dbus.MakeVariant(uint32(1400))},
		"ipv4": {"method": dbus.MakeVariant("manual"), "addresses": dbus.MakeVariant([][]uint32{{1, 24, 0}}),
			"address-data": dbus.MakeVariant([]map[string]dbus.Variant{{"address": dbus.MakeVariant("10.0.0.5"), "prefix": dbus.MakeVariant(uint32(24))}}),
			"gateway":      dbus.MakeVariant("10.0.0.1"), "dns": dbus.MakeVariant([]uint32{0x0100000a})},
		"ipv6": {"method": dbus.MakeVariant("auto"), "addresses": dbus.MakeVariant([]any{}), "routes": dbus.MakeVariant([]any{})},
		"user": {"data": dbus.MakeVariant(map[string]string{"other.key": "v"})},
	}
	spec := DHCPSpec{InterfaceName: "enp1s0", MAC: "52:54:00:aa:bb:01", IPv6Method: "disabled"}
	st := spec.UpdateSettings(old)
	for _, ip := range []string{"ipv4", "ipv6"} {
		if _, ok := st[ip]["addresses"]; ok {
			t.Errorf("%s.addresses kept: NetworkManager refuses it on Update", ip)
		}
	}
	if _, ok := st["ipv6"]["routes"]; ok {
		t.Error("ipv6.routes kept")
	}
	if _, ok := st[EthernetType]["mac-address"]; ok {
		t.Error("binding to another MAC kept")
	}
	for _, k := range []string{"address-data", "gateway", "dns"} {
		if _, ok := st["ipv4"][k]; ok {
			t.Errorf("static ipv4.%s kept in a DHCP profile", k)
		}
	}
	if p := ParseProfile("/x", old); p.IPv4Gateway != "10.0.0.1" || len(p.IPv4DNS) != 1 || p.IPv4DNS[0] != "10.0.0.1" {
		t.Errorf("static gateway/dns not parsed: %+v", p)
	}
	if st[EthernetType]["mtu"].Value().(uint32) != 1400 {
		t.Error("unrelated property lost")
	}
	data := st["user"]["data"].Value().(map[string]string)
	if data["other.key"] != "v" || data[ManagedKey] == "" {
		t.Errorf("user data %v", data)
	}
	if _, ok := old["ipv4"]["addresses"]; !ok {
		t.Error("old settings were modified in place")
	}
	if d := spec.Diff(ParseProfile("/x", st)); len(d) != 0 {
		t.Fatalf("updated settings do not satisfy the spec: %v", d)
	}
}

func TestParseProfile(t *testing.T) {
	s := Settings{
		"connection": {"id": dbus.MakeVariant("Wired eth0"), "uuid": dbus.MakeVariant("u1"), "type": dbus.MakeVariant(EthernetType), "interface-name": dbus.MakeVariant("eth0")},
		EthernetType: {"mac-address": dbus.MakeVariant([]byte{0x52, 0x54, 0, 0xAB, 0xCD, 0xEF})},
		"ipv4":       {"method": dbus.MakeVariant("manual"), "address-data": dbus.MakeVariant([]map[string]dbus.Variant{{"address": dbus.MakeVariant("10.77.0.50"), "prefix": dbus.MakeVariant(uint32(24))}})},
		"ipv6":       {"method": dbus.MakeVariant("ignore")},
	}
	p := ParseProfile("/p", s)
	want := Profile{Path: "/p", ID: "Wired eth0", UUID: "u1", Type: EthernetType, InterfaceName: "eth0",
		MAC: "52:54:00:ab:cd:ef", IPv4Method: "manual", IPv6Method: "ignore", IPv4Addresses: []string{"10.77.0.50/24"}, Autoconnect: true}
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("got  %+v\nwant %+v", p, want)
	}
	if !p.BoundTo("enp1s0", "52:54:00:AB:CD:EF") || p.BoundTo("enp1s0", "52:54:00:00:00:01") {
		t.Fatal("BoundTo by MAC is wrong")
	}
}

func TestBoundToMissing(t *testing.T) {
	devs := []Device{{Interface: "enp1s0", MAC: "52:54:00:00:00:01"}, {Interface: "lo"}}
	tests := []struct {
		name string
		p    Profile
		want bool
	}{
		{"eth0 missing", Profile{Type: EthernetType, InterfaceName: "eth0"}, true},
		{"enp1s0 present", Profile{Type: EthernetType, InterfaceName: "enp1s0"}, false},
		{"mac present", Profile{Type: EthernetType, MAC: "52:54:00:00:00:01"}, false},
		{"mac missing", Profile{Type: EthernetType, MAC: "52:54:00:00:00:02"}, true},
		{"name present but other mac", Profile{Type: EthernetType, InterfaceName: "enp1s0", MAC: "52:54:00:00:00:02"}, true},
		{"unbound", Profile{Type: EthernetType}, false},
		{"bridge profiles create their device", Profile{Type: "bridge", InterfaceName: "br9"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := BoundToMissing(tc.p, deviceLinks(devs)); got != tc.want {
				t.Fatalf("BoundToMissing = %t, want %t", got, tc.want)
			}
		})
	}
	// The kernel's interfaces decide over NetworkManager's devices; none known leaves it as is.
	st := State{Profiles: []Profile{{Type: EthernetType, InterfaceName: "eth0"}, {Type: EthernetType, InterfaceName: "enp9s0", BoundToMissingInterface: true}}}
	MarkMissing(&st, nil)
	if st.Profiles[0].BoundToMissingInterface || !st.Profiles[1].BoundToMissingInterface {
		t.Fatalf("MarkMissing without links changed the profiles: %+v", st.Profiles)
	}
	MarkMissing(&st, []Link{{Name: "enp9s0"}})
	if !st.Profiles[0].BoundToMissingInterface || st.Profiles[1].BoundToMissingInterface {
		t.Fatalf("MarkMissing against the kernel's enp9s0: %+v", st.Profiles)
	}
}

func TestNewUUID(t *testing.T) {
	u := NewUUID()
	if len(u) != 36 || u[14] != '4' || strings.Count(u, "-") != 4 || u == NewUUID() {
		t.Fatalf("bad uuid %q", u)
	}
}

// TestDiffResetsDNSOverride: DNS set by hand (ipv4.dns, ignore-auto-dns) is part of what a DHCP
// profile does not keep: the diff names both and UpdateSettings clears both.
func TestDiffResetsDNSOverride(t *testing.T) {
	old := Settings{
		"connection": {"id": dbus.MakeVariant("kvm-dhcp-enp1s0"), "type": dbus.MakeVariant(EthernetType), "interface-name": dbus.MakeVariant("enp1s0")},
		"ipv4":       {"method": dbus.MakeVariant("auto"), "dns": dbus.MakeVariant([]uint32{0x350200c0}), "ignore-auto-dns": dbus.MakeVariant(true)}, // 192.0.2.53
		"user":       {"data": dbus.MakeVariant(map[string]string{ManagedKey: "kvmnet-agent"})},
	}
	p := ParseProfile("/c/1", old)
	if !p.IPv4IgnoreAutoDNS || len(p.IPv4DNS) != 1 || p.IPv4DNS[0] != "192.0.2.53" {
		t.Fatalf("parsed %+v", p)
	}
	spec := DHCPSpec{InterfaceName: "enp1s0", MAC: "52:54:00:00:00:01"}
	var keys []string
	for _, f := range spec.Diff(p) {
		keys = append(keys, f.String())
	}
	got := strings.Join(keys, "; ")
	if !strings.Contains(got, `ipv4.dns: "192.0.2.53" -> ""`) || !strings.Contains(got, `ipv4.ignore-auto-dns: "yes" -> "no"`) {
		t.Fatalf("diff %s", got)
	}
	after := ParseProfile("/c/1", spec.UpdateSettings(old))
	if after.IPv4IgnoreAutoDNS || len(after.IPv4DNS) != 0 || len(spec.Diff(after)) != 0 {
		t.Fatalf("after UpdateSettings: %+v, diff %v", after, spec.Diff(after))
	}
}
