package libvirtxml

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/kvmnet/kvmnet/controller/snapshot"
)

// ParseDnsmasqStatus parses the lease state libvirt's leaseshelper keeps for a network's dnsmasq
// (/var/lib/libvirt/dnsmasq/<bridge>.status): a JSON array of objects with "ip-address",
// "mac-address", "hostname", "client-id", "expiry-time" (unix seconds). An empty file means no leases.
// Prefix is not in the file: it is prefix4 or prefix6 (the network's prefix for the lease's family;
// pass 0 when unknown).
func ParseDnsmasqStatus(data []byte, prefix4, prefix6 int) ([]snapshot.Lease, error) {
	if strings.TrimSpace(string(data)) == "" {
		return nil, nil
	}
	var raw []struct {
		IP       string `json:"ip-address"`
		MAC      string `json:"mac-address"`
		Hostname string `json:"hostname"`
		ClientID string `json:"client-id"`
		IAID     string `json:"iaid"`
		Expiry   int64  `json:"expiry-time"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("parse dnsmasq status file: %w", err)
	}
	var out []snapshot.Lease
	for i, r := range raw {
		a, err := netip.ParseAddr(r.IP)
		if err != nil {
			return nil, fmt.Errorf("parse dnsmasq status file: entry %d: ip %q: %w", i, r.IP, err)
		}
		l := snapshot.Lease{MAC: snapshot.ParseMAC(r.MAC), IP: a.String(), Hostname: r.Hostname,
			Expiry: time.Unix(r.Expiry, 0).UTC(), Family: 4, Prefix: prefix4}
		if a.Is6() && !a.Is4In6() {
			l.Family, l.Prefix = 6, prefix6
		}
		out = append(out, l)
	}
	return out, nil
}
