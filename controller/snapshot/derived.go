package snapshot

import (
	"fmt"
	"strings"

	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// MAC is a hardware address as every source stores it: lower case, no surrounding space, so two MACs
// compare with ==. Sources (libvirt XML and leases, netlink) convert with ParseMAC; so does code
// that compares against what a guest agent reports.
type MAC string

// ParseMAC normalises s (case, surrounding space). It does not validate: a malformed address stays
// malformed, and matches nothing.
func ParseMAC(s string) MAC { return MAC(strings.ToLower(strings.TrimSpace(s))) }

// String returns the address.
func (m MAC) String() string { return string(m) }

// Networks are libvirt's networks, with the look-ups the controller makes in them.
type Networks []Network

// Find returns the network with the given name.
func (ns Networks) Find(name string) (Network, bool) {
	for _, n := range ns {
		if n.Name == name {
			return n, true
		}
	}
	return Network{}, false
}

// NameOf is the libvirt network a NIC is on: its <source network> for type=network (defined or
// not), or the active network whose bridge a type=bridge NIC is plugged into; "" otherwise.
func (ns Networks) NameOf(nic DomainNIC) string {
	switch nic.Type {
	case "network":
		return nic.Network
	case "bridge":
		for _, n := range ns {
			if n.Bridge != "" && n.Bridge == nic.Bridge && n.Active {
				return n.Name
			}
		}
	}
	return ""
}

// Of returns the defined network a NIC is on (see NameOf).
func (ns Networks) Of(nic DomainNIC) (Network, bool) {
	name := ns.NameOf(nic)
	if name == "" {
		return Network{}, false
	}
	return ns.Find(name)
}

// BridgeIPv4 is the host's IPv4 address on the network (the first IPv4 <ip>), or "" when it has
// none. A network in forward mode bridge has none: the host bridge's addresses are not libvirt's.
func (n Network) BridgeIPv4() string {
	if n.Forward == ForwardBridge {
		return ""
	}
	for _, ip := range n.IPs {
		if ip.Family == 4 && ip.Address != "" {
			return ip.Address
		}
	}
	return ""
}

// LibvirtDHCP reports whether libvirt's dnsmasq hands out the network's IPv4 leases.
func (n Network) LibvirtDHCP() bool { return n.Forward != ForwardBridge && n.HasDHCP() }

// DefaultIfaceV4 is the guest interface of the IPv4 default route, "" when there is none. The
// routes come first: with several default routes the kernel lists the preferred one first, while
// every interface that has one carries the flag.
func DefaultIfaceV4(st *kvmnetv1.GuestState) string {
	for _, r := range st.GetRoutes() {
		if r.GetFamily() == 4 && r.GetDestination() == "default" && r.GetInterface() != "" {
			return r.GetInterface()
		}
	}
	for _, it := range st.GetInterfaces() {
		if it.GetDefaultRouteV4() {
			return it.GetName()
		}
	}
	return ""
}

// GuestInterface returns the guest interface with the given MAC (nil when the guest has none).
func GuestInterface(st *kvmnetv1.GuestState, mac MAC) *kvmnetv1.Interface {
	if mac == "" {
		return nil
	}
	for _, it := range st.GetInterfaces() {
		if ParseMAC(it.GetMac()) == mac {
			return it
		}
	}
	return nil
}

// NIC returns the domain NIC with the given MAC.
func (d Domain) NIC(mac MAC) (DomainNIC, bool) {
	if mac == "" {
		return DomainNIC{}, false
	}
	for _, n := range d.NICs {
		if n.MAC == mac {
			return n, true
		}
	}
	return DomainNIC{}, false
}

// AgentAddr is where the controller dials a guest agent. Its text form (String) is what
// `kvmnetctl agent --addr` takes and what Guest.Address shows.
type AgentAddr struct {
	// Scheme is "unix", "vsock" or "serial" (a virtio-serial channel's unix socket).
	Scheme string
	// Path is the unix socket (unix, serial).
	Path string
	// CID and Port are the vsock context id of the guest and the agent's port.
	CID, Port uint32
}

// String formats the address as unix:/path, vsock:CID:PORT or serial:/path ("" for the zero value).
func (a AgentAddr) String() string {
	switch a.Scheme {
	case "":
		return ""
	case "vsock":
		return fmt.Sprintf("vsock:%d:%d", a.CID, a.Port)
	}
	return a.Scheme + ":" + a.Path
}
