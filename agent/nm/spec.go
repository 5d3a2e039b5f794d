package nm

import (
	"crypto/rand"
	"fmt"
	"net"
	"strings"

	"github.com/godbus/dbus/v5"
)

// DHCPSpec is the profile kvmnet wants for one NIC: kvm-dhcp-<ifname>, ethernet, bound by
// interface-name, ipv4.method auto, ipv6.method as planned, autoconnect yes, marked as kvmnet's.
type DHCPSpec struct {
	// InterfaceName of the NIC, e.g. "enp1s0".
	InterfaceName string
	// MAC of the NIC, lower case (recorded in user data as evidence).
	MAC string
	// IPv6Method is "auto", "ignore", "disabled", or "" to leave NetworkManager's default on new
	// profiles and the current value on existing ones.
	IPv6Method string
}

// ID is the profile id kvmnet uses for the NIC.
func (s DHCPSpec) ID() string { return ProfilePrefix + s.InterfaceName }

// FieldChange is one property that differs between a profile and what kvmnet wants.
type FieldChange struct {
	// Key as nmcli names it, e.g. "ipv4.method".
	Key string
	// Old value ("" when unset).
	Old string
	// New value.
	New string
}

func (f FieldChange) String() string { return fmt.Sprintf("%s: %q -> %q", f.Key, f.Old, f.New) }

// Diff lists what must change in p (the existing profile with the spec's id) to satisfy the spec;
// empty means p already is what kvmnet wants. For a missing profile pass the zero Profile: the
// result lists every property a new profile gets.
func (s DHCPSpec) Diff(p Profile) []FieldChange {
	var out []FieldChange
	add := func(key, old, want string) {
		if old != want {
			out = append(out, FieldChange{Key: key, Old: old, New: want})
		}
	}
	add("connection.id", p.ID, s.ID())
	add("connection.type", p.Type, EthernetType)
	add("connection.interface-name", p.InterfaceName, s.InterfaceName)
	if p.MAC != "" && !strings.EqualFold(p.MAC, s.MAC) {
		add("802-3-ethernet.mac-address", p.MAC, "")
	}
	add("connection.autoconnect", boolStr(p.Autoconnect), "yes")
	add("ipv4.method", p.IPv4Method, "auto")
	// A DHCP profile keeps no static IPv4 configuration: left-over addresses, a gateway overriding the
	// DHCP default route and unreachable DNS servers are what break a guest switched from static.
	add("ipv4.address-data", strings.Join(p.IPv4Addresses, ","), "")
	add("ipv4.gateway", p.IPv4Gateway, "")
	add("ipv4.dns", strings.Join(p.IPv4DNS, ","), "")
	add("ipv4.ignore-auto-dns", boolStr(p.IPv4IgnoreAutoDNS), "no")
	if s.IPv6Method != "" {
		add("ipv6.method", p.IPv6Method, s.IPv6Method)
	}
	if !p.ManagedByKvmnet {
		add("user.data."+ManagedKey, "", "kvmnet-agent")
	}
	return out
}

func boolStr(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// NewSettings returns the D-Bus settings of a new profile for the spec with the given uuid.
func (s DHCPSpec) NewSettings(uuid string) Settings {
	st := Settings{
		"connection": {
			"id":             dbus.MakeVariant(s.ID()),
			"uuid":           dbus.MakeVariant(uuid),
			"type":           dbus.MakeVariant(EthernetType),
			"interface-name": dbus.MakeVariant(s.InterfaceName),
			"autoconnect":    dbus.MakeVariant(true),
		},
		EthernetType: {},
		"ipv4":       {"method": dbus.MakeVariant("auto")},
		"user":       {"data": dbus.MakeVariant(s.userData(nil))},
	}
	if s.IPv6Method != "" {
		st["ipv6"] = map[string]dbus.Variant{"method": dbus.MakeVariant(s.IPv6Method)}
	}
	return st
}

func (s DHCPSpec) userData(old map[string]string) map[string]string {
	d := map[string]string{}
	for k, v := range old {
		d[k] = v
	}
	d[ManagedKey] = "kvmnet-agent"
	if s.MAC != "" {
		d[MACKey] = strings.ToLower(s.MAC)
	}
	return d
}

// UpdateSettings returns a copy of old (from GetSettings) changed to satisfy the spec, ready for
// Update: deprecated keys NetworkManager refuses on the way back (ipv4/ipv6 "addresses" and
// "routes", superseded by address-data and route-data) are dropped.
func (s DHCPSpec) UpdateSettings(old Settings) Settings {
	st := WritableCopy(old)
	for _, ip := range []string{"ipv4", "ipv6"} {
		if st[ip] == nil {
			st[ip] = map[string]dbus.Variant{}
		}
	}
	if st["connection"] == nil {
		st["connection"] = map[string]dbus.Variant{}
	}
	st["connection"]["id"] = dbus.MakeVariant(s.ID())
	st["connection"]["interface-name"] = dbus.MakeVariant(s.InterfaceName)
	st["connection"]["autoconnect"] = dbus.MakeVariant(true)
	if st[EthernetType] == nil {
		st[EthernetType] = map[string]dbus.Variant{}
	}
	if b, ok := st[EthernetType]["mac-address"].Value().([]byte); ok && len(b) > 0 && !strings.EqualFold(net.HardwareAddr(b).String(), s.MAC) {
		delete(st[EthernetType], "mac-address")
	}
	st["ipv4"]["method"] = dbus.MakeVariant("auto")
	for _, k := range []string{"address-data", "gateway", "dns", "dns-data"} {
		delete(st["ipv4"], k)
	}
	st["ipv4"]["ignore-auto-dns"] = dbus.MakeVariant(false) // DNS from DHCP, i.e. the network's
	if s.IPv6Method != "" {
		st["ipv6"]["method"] = dbus.MakeVariant(s.IPv6Method)
	}
	var data map[string]string
	if st["user"] != nil {
		data, _ = st["user"]["data"].Value().(map[string]string)
	} else {
		st["user"] = map[string]dbus.Variant{}
	}
	st["user"]["data"] = dbus.MakeVariant(s.userData(data))
	return st
}

// NewUUID returns a random (version 4) UUID for a new profile.
func NewUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// WritableCopy returns a deep copy of settings read with GetSettings, fit to be sent back with Update
// or AddConnection: the deprecated ipv4/ipv6 "addresses" and "routes" keys, which NetworkManager
// reports but refuses next to address-data/route-data, are dropped.
func WritableCopy(old Settings) Settings {
	st := Settings{}
	for name, props := range old {
		st[name] = map[string]dbus.Variant{}
		for k, v := range props {
			st[name][k] = v
		}
	}
	for _, ip := range []string{"ipv4", "ipv6"} {
		if st[ip] != nil {
			delete(st[ip], "addresses")
			delete(st[ip], "routes")
		}
	}
	return st
}
