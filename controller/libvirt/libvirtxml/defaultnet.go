package libvirtxml

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/kvmnet/kvmnet/controller/snapshot"
)

// DefaultNetworkXML is the stock "default" network from the guide: NAT, bridge virbr0,
// 192.168.122.1/24, DHCP .2–.254. `kvmnetctl host fix` defines it for network_missing.
const DefaultNetworkXML = `<network>
  <name>default</name>
  <forward mode='nat'>
    <nat>
      <port start='1024' end='65535'/>
    </nat>
  </forward>
  <bridge name='virbr0' stp='on' delay='0'/>
  <ip address='192.168.122.1' netmask='255.255.255.0'>
    <dhcp>
      <range start='192.168.122.2' end='192.168.122.254'/>
    </dhcp>
  </ip>
</network>
`

// DefaultNetworkName, DefaultBridge and DefaultSubnet describe DefaultNetworkXML.
const (
	DefaultNetworkName = "default"
	DefaultBridge      = "virbr0"
	DefaultSubnet      = "192.168.122.0/24"
)

// SubnetFree reports whether subnet (CIDR) overlaps none of the host's addresses/routes (hostPrefixes,
// CIDR strings such as "10.0.0.5/24" or routes "192.168.0.0/16") and none of the other libvirt
// networks' subnets. The evidence names what collides ("collides=addr:192.168.122.5/24") or says
// "free=yes". Unparsable host entries are ignored and listed in the evidence.
func SubnetFree(subnet string, hostPrefixes []string, networks []snapshot.Network) (bool, string) {
	want, err := netip.ParsePrefix(subnet)
	if err != nil {
		return false, fmt.Sprintf("subnet=%q invalid=%v", subnet, err)
	}
	want = want.Masked()
	var collide, bad []string
	for _, h := range hostPrefixes {
		p, err := netip.ParsePrefix(h)
		if err != nil {
			if a, err2 := netip.ParseAddr(h); err2 == nil {
				p = netip.PrefixFrom(a, a.BitLen())
			} else {
				bad = append(bad, h)
				continue
			}
		}
		if p.Bits() == 0 {
			continue // a default route overlaps everything and means nothing here
		}
		if p.Masked().Overlaps(want) {
			collide = append(collide, "host:"+h)
		}
	}
	for _, n := range networks {
		for _, ip := range n.IPs {
			p, err := netip.ParsePrefix(ip.Subnet)
			if err == nil && p.Overlaps(want) {
				collide = append(collide, "network:"+n.Name+"="+ip.Subnet)
			}
		}
	}
	ev := "subnet=" + want.String()
	if len(bad) > 0 {
		ev += " ignored=" + strings.Join(bad, ",")
	}
	if len(collide) > 0 {
		return false, ev + " free=no collides=" + strings.Join(collide, ",")
	}
	return true, ev + " free=yes"
}
