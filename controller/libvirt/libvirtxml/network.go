package libvirtxml

import (
	"encoding/xml"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/kvmnet/kvmnet/controller/snapshot"
)

// networkXML is the subset of libvirt's <network> that kvmnet reads.
type networkXML struct {
	XMLName xml.Name `xml:"network"`
	Name    string   `xml:"name"`
	UUID    string   `xml:"uuid"`
	Forward *struct {
		Mode string `xml:"mode,attr"`
		Dev  string `xml:"dev,attr"`
		// Interfaces are <interface dev=...> (pools of host NICs for bridge/macvtap modes).
		Interfaces []struct {
			Dev string `xml:"dev,attr"`
		} `xml:"interface"`
	} `xml:"forward"`
	Bridge *struct {
		Name string `xml:"name,attr"`
		STP  string `xml:"stp,attr"`
	} `xml:"bridge"`
	MAC *struct {
		Address string `xml:"address,attr"`
	} `xml:"mac"`
	Domain *struct {
		Name string `xml:"name,attr"`
	} `xml:"domain"`
	DNS *struct {
		Enable     string `xml:"enable,attr"`
		Forwarders []struct {
			Addr   string `xml:"addr,attr"`
			Domain string `xml:"domain,attr"`
		} `xml:"forwarder"`
	} `xml:"dns"`
	IPs []ipXML `xml:"ip"`
}

type ipXML struct {
	Family  string `xml:"family,attr"`
	Address string `xml:"address,attr"`
	Netmask string `xml:"netmask,attr"`
	Prefix  string `xml:"prefix,attr"`
	DHCP    *struct {
		Ranges []struct {
			Start string `xml:"start,attr"`
			End   string `xml:"end,attr"`
		} `xml:"range"`
		Hosts []struct {
			MAC  string `xml:"mac,attr"`
			IP   string `xml:"ip,attr"`
			Name string `xml:"name,attr"`
		} `xml:"host"`
	} `xml:"dhcp"`
}

// ParseNetworkXML parses a libvirt network description into a snapshot.Network. Active, Autostart,
// Persistent and the leases are not in the XML: the caller fills them. A missing <forward> means an
// isolated network; <forward/> without mode means NAT (libvirt's default). DNSEnabled follows
// <dns enable=...> (true unless "no"). XML is set to the input.
func ParseNetworkXML(data string) (snapshot.Network, error) {
	var x networkXML
	if err := xml.Unmarshal([]byte(data), &x); err != nil {
		return snapshot.Network{}, fmt.Errorf("parse network XML: %w", err)
	}
	n := snapshot.Network{
		Name:       strings.TrimSpace(x.Name),
		UUID:       strings.TrimSpace(x.UUID),
		Forward:    forwardMode(x),
		DNSEnabled: true,
		XML:        data,
	}
	if n.Name == "" {
		return snapshot.Network{}, fmt.Errorf("parse network XML: no <name>")
	}
	if x.Forward != nil {
		n.ForwardDev = x.Forward.Dev
		if n.ForwardDev == "" && len(x.Forward.Interfaces) > 0 {
			n.ForwardDev = x.Forward.Interfaces[0].Dev
		}
	}
	if x.Bridge != nil {
		n.Bridge = x.Bridge.Name
	}
	if x.Domain != nil {
		n.Domain = x.Domain.Name
	}
	if x.DNS != nil {
		n.DNSEnabled = x.DNS.Enable != "no"
		for _, f := range x.DNS.Forwarders {
			switch {
			case f.Addr != "" && f.Domain != "":
				n.DNSForwarders = append(n.DNSForwarders, f.Addr+" (for "+f.Domain+")")
			case f.Addr != "":
				n.DNSForwarders = append(n.DNSForwarders, f.Addr)
			}
		}
	}
	for i, ipx := range x.IPs {
		ip, err := parseIP(ipx)
		if err != nil {
			return snapshot.Network{}, fmt.Errorf("parse network XML %q: <ip> #%d: %w", n.Name, i+1, err)
		}
		n.IPs = append(n.IPs, ip)
	}
	return n, nil
}

func forwardMode(x networkXML) snapshot.ForwardMode {
	if x.Forward == nil {
		return snapshot.ForwardIsolated
	}
	switch x.Forward.Mode {
	case "", "nat":
		return snapshot.ForwardNAT
	case "route":
		return snapshot.ForwardRoute
	case "open":
		return snapshot.ForwardOpen
	case "bridge":
		return snapshot.ForwardBridge
	case "passthrough":
		return snapshot.ForwardPassthrough
	default: // private, vepa, hostdev
		return snapshot.ForwardOther
	}
}

func parseIP(x ipXML) (snapshot.NetworkIP, error) {
	addr, err := netip.ParseAddr(strings.TrimSpace(x.Address))
	if err != nil {
		return snapshot.NetworkIP{}, fmt.Errorf("address %q: %w", x.Address, err)
	}
	addr = addr.Unmap()
	ip := snapshot.NetworkIP{Family: 4, Address: addr.String()}
	if addr.Is6() {
		ip.Family = 6
	}
	if x.Family == "ipv6" && !addr.Is6() {
		return snapshot.NetworkIP{}, fmt.Errorf("family ipv6 with IPv4 address %s", addr)
	}
	bits := addr.BitLen()
	switch {
	case x.Prefix != "":
		p, err := strconv.Atoi(x.Prefix)
		if err != nil || p < 0 || p > bits {
			return snapshot.NetworkIP{}, fmt.Errorf("prefix %q invalid for %s", x.Prefix, addr)
		}
		ip.Prefix = p
	case x.Netmask != "":
		p, err := maskBits(x.Netmask)
		if err != nil {
			return snapshot.NetworkIP{}, err
		}
		ip.Prefix = p
	default:
		// libvirt's defaults: classful for IPv4 is long gone; it uses 24 for IPv4, 64 for IPv6.
		ip.Prefix = 24
		if ip.Family == 6 {
			ip.Prefix = 64
		}
	}
	pfx, err := addr.Prefix(ip.Prefix)
	if err != nil {
		return snapshot.NetworkIP{}, err
	}
	ip.Subnet = pfx.String()
	if x.DHCP != nil {
		for _, r := range x.DHCP.Ranges {
			ip.DHCPRanges = append(ip.DHCPRanges, snapshot.DHCPRange{Start: r.Start, End: r.End})
		}
		for _, h := range x.DHCP.Hosts {
			ip.DHCPHosts = append(ip.DHCPHosts, snapshot.DHCPHost{MAC: snapshot.ParseMAC(h.MAC), IP: h.IP, Name: h.Name})
		}
	}
	return ip, nil
}

// maskBits converts a dotted IPv4 netmask to a prefix length; non-contiguous masks are errors.
func maskBits(mask string) (int, error) {
	a, err := netip.ParseAddr(strings.TrimSpace(mask))
	if err != nil || !a.Is4() {
		return 0, fmt.Errorf("netmask %q is not an IPv4 mask", mask)
	}
	b := a.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	n := 0
	for n < 32 && v&(1<<(31-n)) != 0 {
		n++
	}
	if n < 32 && v<<n != 0 {
		return 0, fmt.Errorf("netmask %q is not contiguous", mask)
	}
	return n, nil
}
