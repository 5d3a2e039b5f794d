package nm

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	gonm "github.com/Wifx/gonetworkmanager/v2"
	"github.com/godbus/dbus/v5"
)

// Device is one network device as NetworkManager sees it. veth devices report type "veth" (they are
// not DeviceWired in gonetworkmanager's terms); real virtio NICs report "ethernet". Both carry their
// MAC in the base Device interface's HwAddress, which is what is read here.
type Device struct {
	// Path is the D-Bus object path.
	Path dbus.ObjectPath
	// Interface is the kernel name, e.g. "enp1s0".
	Interface string
	// MAC is the hardware address, lower case.
	MAC string
	// Type is NetworkManager's device type.
	Type gonm.NmDeviceType
	// State is NetworkManager's device state.
	State gonm.NmDeviceState
	// Managed is whether NetworkManager manages the device.
	Managed bool
	// ActiveConnection is the active connection object, "/" when none.
	ActiveConnection dbus.ObjectPath
	// IPv4 addresses in CIDR form from the device's IP4Config.
	IPv4 []string
}

// TypeName returns a short name for the device type ("ethernet", "veth", "loopback", ...).
func (d Device) TypeName() string {
	switch d.Type {
	case gonm.NmDeviceTypeEthernet:
		return "ethernet"
	case gonm.NmDeviceTypeGeneric:
		return "generic"
	case gonm.NmDeviceTypeBridge:
		return "bridge"
	case gonm.NmDeviceTypeVeth:
		return "veth"
	case 32: // NM_DEVICE_TYPE_LOOPBACK
		return "loopback"
	}
	return fmt.Sprintf("type-%d", uint32(d.Type))
}

// Ethernet reports whether an ethernet profile can be applied to the device (ethernet or veth).
func (d Device) Ethernet() bool {
	return d.Type == gonm.NmDeviceTypeEthernet || d.Type == gonm.NmDeviceTypeVeth
}

// Devices lists every device NetworkManager knows (managed or not), in GetAllDevices' order.
func (c *Client) Devices(ctx context.Context) ([]Device, error) {
	devs, _, err := c.devices(ctx)
	return devs, err
}

// objects is ObjectManager.GetManagedObjects' reply: object path → interface → property → value.
type objects map[dbus.ObjectPath]map[string]map[string]dbus.Variant

// prop returns one property of an object in objs; ok is false when the object or interface is not
// there (objs nil: not fetched).
func (o objects) prop(p dbus.ObjectPath, iface, name string) (v dbus.Variant, ok bool) {
	props, ok := o[p][iface]
	if !ok {
		return dbus.Variant{}, false
	}
	return props[name], true
}

// devices reads the device list and, in the same round trip, every object's properties with one
// ObjectManager.GetManagedObjects call (instead of one GetAll per device and one Get per IP4Config).
// Objects the reply lacks (created in between, or a NetworkManager without the ObjectManager) are read
// one by one, overlapping (see parallel). The objects are returned for State (nil when unavailable).
func (c *Client) devices(ctx context.Context) ([]Device, objects, error) {
	var (
		paths []dbus.ObjectPath
		objs  objects
	)
	errs := parallel(2, func(i int) error {
		if i == 0 {
			return c.call(ctx, nmPath, nmIface+".GetAllDevices", nil, &paths)
		}
		return c.call(ctx, rootPath, objectManagerIface+".GetManagedObjects", nil, &objs)
	})
	if errs[0] != nil {
		return nil, nil, errs[0]
	}
	if errs[1] != nil {
		if !isUnknownObject(errs[1]) {
			return nil, nil, errs[1]
		}
		objs = nil // no ObjectManager: read each object
	}
	devs := make([]Device, len(paths))
	errs = parallel(len(paths), func(i int) error {
		var err error
		devs[i], err = c.device(ctx, paths[i], objs)
		return err
	})
	out := make([]Device, 0, len(paths))
	for i, err := range errs {
		if err != nil {
			if isUnknownObject(err) { // vanished while listing
				continue
			}
			return nil, nil, err
		}
		out = append(out, devs[i])
	}
	return out, objs, nil
}

// device builds one Device from objs, or with its own calls when objs lacks it.
func (c *Client) device(ctx context.Context, p dbus.ObjectPath, objs objects) (Device, error) {
	props, ok := objs[p][deviceIface]
	if !ok {
		var err error
		if props, err = c.getAll(ctx, p, deviceIface); err != nil {
			return Device{}, err
		}
	}
	d := Device{Path: p}
	d.Interface, _ = props["Interface"].Value().(string)
	hw, _ := props["HwAddress"].Value().(string)
	d.MAC = strings.ToLower(hw)
	t, _ := props["DeviceType"].Value().(uint32)
	d.Type = gonm.NmDeviceType(t)
	s, _ := props["State"].Value().(uint32)
	d.State = gonm.NmDeviceState(s)
	d.Managed, _ = props["Managed"].Value().(bool)
	d.ActiveConnection, _ = props["ActiveConnection"].Value().(dbus.ObjectPath)
	if ip4, _ := props["Ip4Config"].Value().(dbus.ObjectPath); ip4 != "" && ip4 != "/" {
		if v, ok := objs.prop(ip4, ip4Iface, "AddressData"); ok {
			d.IPv4 = addressData(v.Value())
			return d, nil
		}
		var err error
		d.IPv4, err = c.ip4Addresses(ctx, ip4)
		if err != nil && !isUnknownObject(err) {
			return Device{}, err
		}
	}
	return d, nil
}

func (c *Client) ip4Addresses(ctx context.Context, p dbus.ObjectPath) ([]string, error) {
	var v dbus.Variant
	if err := c.call(ctx, p, propsIface+".Get", []any{ip4Iface, "AddressData"}, &v); err != nil {
		return nil, err
	}
	return addressData(v.Value()), nil
}

// addressData turns an aa{sv} address-data value into CIDR strings.
func addressData(v any) []string {
	list, _ := v.([]map[string]dbus.Variant)
	var out []string
	for _, a := range list {
		addr, _ := a["address"].Value().(string)
		prefix, _ := a["prefix"].Value().(uint32)
		if ip, err := netip.ParseAddr(addr); err == nil {
			out = append(out, netip.PrefixFrom(ip, int(prefix)).String())
		}
	}
	return out
}

func isUnknownObject(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "UnknownObject") || strings.Contains(err.Error(), "UnknownMethod") ||
		strings.Contains(err.Error(), "No such interface") || strings.Contains(err.Error(), "does not exist"))
}
