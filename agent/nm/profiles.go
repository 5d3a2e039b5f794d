package nm

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strings"

	"github.com/godbus/dbus/v5"
)

// Settings is a connection profile as NetworkManager sends it over D-Bus: setting name → property →
// value (a{sa{sv}}).
type Settings map[string]map[string]dbus.Variant

// Marker keys kvmnet writes into a profile's user data (NetworkManager's "user" setting, user.data:
// free key/value strings NetworkManager stores with the profile and never interprets).
//
// Why user data and not the id alone: the guide's manual recipe (`nmcli connection add ... con-name
// kvm-dhcp`) produces the same kind of name, and users rename profiles; an id says nothing about who
// created a profile. user.data is a first-class setting (NetworkManager >= 1.8) that every settings
// plugin persists (a [user] section in keyfiles) and `nmcli -f user connection show` displays, so the
// mark survives restarts, renames and edits in nmcli, and is visible to the admin. A profile is
// managed by kvmnet exactly when ManagedKey is present.
const (
	// ManagedKey marks a profile created by kvmnet; its value names the creator ("kvmnet-agent").
	ManagedKey = "org.kvmnet.managed-by"
	// MACKey records the MAC of the NIC the profile was made for (lower case), as evidence.
	MACKey = "org.kvmnet.mac"
	// ProfilePrefix starts the id of every profile kvmnet creates: kvm-dhcp-<ifname>.
	ProfilePrefix = "kvm-dhcp-"
	// EthernetType is connection.type of wired profiles.
	EthernetType = "802-3-ethernet"
)

// Profile is one connection profile, flattened to what kvmnet reports and decides on.
type Profile struct {
	// Path is the D-Bus object path of the settings connection.
	Path dbus.ObjectPath
	// ID is connection.id.
	ID string
	// UUID is connection.uuid.
	UUID string
	// Type is connection.type, e.g. "802-3-ethernet".
	Type string
	// InterfaceName is connection.interface-name ("" when unbound by name).
	InterfaceName string
	// MAC is 802-3-ethernet.mac-address, lower case ("" when unbound by MAC).
	MAC string
	// IPv4Method is ipv4.method ("" when the profile has no ipv4 setting).
	IPv4Method string
	// IPv6Method is ipv6.method.
	IPv6Method string
	// IPv4Addresses are the static addresses of ipv4.address-data, CIDR.
	IPv4Addresses []string
	// IPv4Gateway is the static ipv4.gateway ("" when none).
	IPv4Gateway string
	// IPv4DNS are the static ipv4.dns servers.
	IPv4DNS []string
	// IPv4IgnoreAutoDNS is ipv4.ignore-auto-dns: DHCP's DNS servers are not used.
	IPv4IgnoreAutoDNS bool
	// Autoconnect is connection.autoconnect (NetworkManager's default is true).
	Autoconnect bool
	// ManagedByKvmnet is true when user.data carries ManagedKey.
	ManagedByKvmnet bool
	// Active is true when the profile is active on some device.
	Active bool
	// ActiveDevice is the interface the active profile is applied to.
	ActiveDevice string
	// BoundToMissingInterface is true for an ethernet profile whose interface-name or MAC matches no
	// device: the "hard-coded interface name" failure (eth0 when the NIC is enp1s0).
	BoundToMissingInterface bool
	// Filename is the file NetworkManager stores the profile in ("" for in-memory profiles).
	Filename string
	// NameConflict says why a profile named like kvmnet's own (ProfilePrefix + ifname) is not
	// kvmnet's ("" when it is kvmnet's or named otherwise); set by MarkMissing.
	NameConflict string
}

// BoundTo reports whether the profile is bound to the NIC named ifname with MAC mac, by name or MAC.
func (p Profile) BoundTo(ifname, mac string) bool {
	return (p.InterfaceName != "" && p.InterfaceName == ifname) || (p.MAC != "" && strings.EqualFold(p.MAC, mac))
}

// State is everything the Client reads about profiles and devices in one go.
type State struct {
	// Status of NetworkManager.
	Status Status
	// Devices NetworkManager knows.
	Devices []Device
	// Profiles, sorted by id.
	Profiles []Profile
}

// DeviceByMAC returns the device with the given MAC.
func (s State) DeviceByMAC(mac string) (Device, bool) {
	for _, d := range s.Devices {
		if d.MAC != "" && strings.EqualFold(d.MAC, mac) {
			return d, true
		}
	}
	return Device{}, false
}

// ProfileByID returns the profile with the given id.
func (s State) ProfileByID(id string) (Profile, bool) {
	for _, p := range s.Profiles {
		if p.ID == id {
			return p, true
		}
	}
	return Profile{}, false
}

// State reads NetworkManager's status, devices and profiles (with activity and missing-interface
// detection). Independent D-Bus calls overlap (see parallel); errors are reported in the order a
// sequential read would meet them: status, devices, the profile list, active connections, profiles.
func (c *Client) State(ctx context.Context) (State, error) {
	var (
		st    Status
		devs  []Device
		objs  objects
		paths []dbus.ObjectPath
	)
	errs := parallel(3, func(i int) error {
		var err error
		switch i {
		case 0:
			st, err = c.Status(ctx)
		case 1:
			devs, objs, err = c.devices(ctx)
		case 2:
			err = c.call(ctx, settingsPath, settingsIface+".ListConnections", nil, &paths)
		}
		return err
	})
	for _, err := range errs {
		if err != nil {
			return State{}, err
		}
	}
	// One task per device with an active connection (its settings path), then two per profile
	// (settings, file name). The active connections' and profiles' properties come with the objects
	// devices read; only what they lack is asked for.
	var actDevs []Device
	for _, d := range devs {
		if d.ActiveConnection != "" && d.ActiveConnection != "/" {
			actDevs = append(actDevs, d)
		}
	}
	actPaths := make([]dbus.Variant, len(actDevs))
	settings := make([]Settings, len(paths))
	filenames := make([]dbus.Variant, len(paths))
	na := len(actDevs)
	errs = parallel(na+2*len(paths), func(i int) error {
		switch {
		case i < na:
			if v, ok := objs.prop(actDevs[i].ActiveConnection, activeIface, "Connection"); ok {
				actPaths[i] = v
				return nil
			}
			return c.call(ctx, actDevs[i].ActiveConnection, propsIface+".Get", []any{activeIface, "Connection"}, &actPaths[i])
		case (i-na)%2 == 0:
			var err error
			settings[(i-na)/2], err = c.Settings(ctx, paths[(i-na)/2])
			return err
		default:
			p := paths[(i-na)/2]
			if v, ok := objs.prop(p, connIface, "Filename"); ok {
				filenames[(i-na)/2] = v
				return nil
			}
			return c.call(ctx, p, propsIface+".Get", []any{connIface, "Filename"}, &filenames[(i-na)/2])
		}
	})
	active := map[dbus.ObjectPath]string{} // settings path → device interface
	for i, d := range actDevs {
		if err := errs[i]; err != nil {
			if isUnknownObject(err) {
				continue
			}
			return State{}, err
		}
		if p, ok := actPaths[i].Value().(dbus.ObjectPath); ok {
			active[p] = d.Interface
		}
	}
	out := State{Status: st, Devices: devs}
	for j, p := range paths {
		if err := errs[na+2*j]; err != nil {
			if isUnknownObject(err) {
				continue
			}
			return State{}, err
		}
		prof := ParseProfile(p, settings[j])
		if dev, ok := active[p]; ok {
			prof.Active, prof.ActiveDevice = true, dev
		}
		if errs[na+2*j+1] == nil {
			prof.Filename, _ = filenames[j].Value().(string)
		}
		prof.BoundToMissingInterface = BoundToMissing(prof, deviceLinks(devs))
		out.Profiles = append(out.Profiles, prof)
	}
	sort.Slice(out.Profiles, func(i, j int) bool {
		if out.Profiles[i].ID != out.Profiles[j].ID {
			return out.Profiles[i].ID < out.Profiles[j].ID
		}
		return out.Profiles[i].UUID < out.Profiles[j].UUID
	})
	return out, nil
}

// Settings returns the settings of the connection at path.
func (c *Client) Settings(ctx context.Context, path dbus.ObjectPath) (Settings, error) {
	var s Settings
	err := c.call(ctx, path, connIface+".GetSettings", nil, &s)
	return s, err
}

// Link is an interface by name and MAC, as BoundToMissing matches profiles against it.
type Link struct {
	// Name and MAC of the interface.
	Name, MAC string
}

// BoundToMissing is the agent's one decision of "profile bound to a missing interface": p is an
// ethernet profile bound by interface-name and/or MAC, and none of links has that name and MAC. The
// Client decides it against NetworkManager's devices; the agent then decides it again, with the
// same function, against the kernel's interfaces (MarkMissing), and everything else (plans, the
// host's diagnosis) uses the reported BoundToMissingInterface.
func BoundToMissing(p Profile, links []Link) bool {
	if p.Type != EthernetType || (p.InterfaceName == "" && p.MAC == "") {
		return false
	}
	for _, l := range links {
		nameOK := p.InterfaceName == "" || p.InterfaceName == l.Name
		macOK := p.MAC == "" || strings.EqualFold(p.MAC, l.MAC)
		if nameOK && macOK {
			return false
		}
	}
	return true
}

// MarkMissing sets BoundToMissingInterface of every profile in st against the kernel's interfaces
// (links); with none known, NetworkManager's devices decided it already.
func MarkMissing(st *State, links []Link) {
	if len(links) == 0 {
		return
	}
	for i := range st.Profiles {
		st.Profiles[i].BoundToMissingInterface = BoundToMissing(st.Profiles[i], links)
		st.Profiles[i].NameConflict = NameConflict(st.Profiles[i])
	}
}

// NameConflict says why p, whose id is the name kvmnet gives its own profile for an interface
// (kvm-dhcp-<ifname>), is not kvmnet's: it lacks the ManagedKey marker, so someone else made it.
// Such a profile is never adopted (it may carry 802-1x, permissions or DNS settings kvmnet knows
// nothing of); kvmnet's own profile for that interface needs the name. "" for any other profile.
func NameConflict(p Profile) string {
	ifname, ok := strings.CutPrefix(p.ID, ProfilePrefix)
	if !ok || ifname == "" || p.ManagedByKvmnet {
		return ""
	}
	return fmt.Sprintf("id %q is the name kvmnet gives its own profile for %s, but the profile (uuid %s) lacks kvmnet's marker (no %s in user.data): someone else made it, so kvmnet does not adopt it",
		p.ID, ifname, p.UUID, ManagedKey)
}

func deviceLinks(devs []Device) []Link {
	out := make([]Link, 0, len(devs))
	for _, d := range devs {
		out = append(out, Link{Name: d.Interface, MAC: d.MAC})
	}
	return out
}

// ParseProfile flattens settings into a Profile (pure; Active, Filename and BoundToMissingInterface
// are left for the caller).
func ParseProfile(path dbus.ObjectPath, s Settings) Profile {
	p := Profile{Path: path, Autoconnect: true}
	str := func(setting, key string) string {
		v, _ := s[setting][key].Value().(string)
		return v
	}
	p.ID = str("connection", "id")
	p.UUID = str("connection", "uuid")
	p.Type = str("connection", "type")
	p.InterfaceName = str("connection", "interface-name")
	if v, ok := s["connection"]["autoconnect"].Value().(bool); ok {
		p.Autoconnect = v
	}
	if b, ok := s[EthernetType]["mac-address"].Value().([]byte); ok && len(b) > 0 {
		p.MAC = net.HardwareAddr(b).String()
	}
	p.IPv4Method = str("ipv4", "method")
	p.IPv6Method = str("ipv6", "method")
	p.IPv4Addresses = addressData(s["ipv4"]["address-data"].Value())
	p.IPv4Gateway = str("ipv4", "gateway")
	if dns, ok := s["ipv4"]["dns"].Value().([]uint32); ok {
		for _, d := range dns {
			// NetworkManager's ipv4.dns: addresses as uint32 in network byte order (little-endian hosts).
			p.IPv4DNS = append(p.IPv4DNS, net.IPv4(byte(d), byte(d>>8), byte(d>>16), byte(d>>24)).String())
		}
	}
	p.IPv4IgnoreAutoDNS, _ = s["ipv4"]["ignore-auto-dns"].Value().(bool)
	if data, ok := s["user"]["data"].Value().(map[string]string); ok {
		_, p.ManagedByKvmnet = data[ManagedKey]
	}
	return p
}

// String is a one-line description for logs.
func (p Profile) String() string {
	return fmt.Sprintf("%s (uuid=%s type=%s ifname=%q mac=%q ipv4=%s ipv6=%s autoconnect=%t kvmnet=%t)",
		p.ID, p.UUID, p.Type, p.InterfaceName, p.MAC, p.IPv4Method, p.IPv6Method, p.Autoconnect, p.ManagedByKvmnet)
}
