package checks

import (
	"net"
	"time"

	"github.com/kvmnet/kvmnet/controller/snapshot"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// DefaultName is resolved through the guest's resolver, and reached on port 80, to prove DNS and
// egress: the Debian mirror, because "apt hangs" is what users notice first.
const DefaultName = "deb.debian.org"

// Check names.
const (
	GatewayV4 = "gateway-v4"
	Dnsmasq   = "dnsmasq-tcp"
	DNSV4     = "dns-v4"
	EgressV4  = "egress-v4"
	HTTPV4    = "http-v4"
	GatewayV6 = "gateway-v6"
	DNSV6     = "dns-v6"
	EgressV6  = "egress-v6"
)

// Names returns every check name the controller asks for: a result under another name is not one
// of its checks.
func Names() []string {
	return []string{GatewayV4, Dnsmasq, DNSV4, EgressV4, HTTPV4, GatewayV6, DNSV6, EgressV6}
}

// Targets are what the checks reach beyond the host.
type Targets struct {
	// DNSName is resolved through the guest's resolver ("" = DefaultName).
	DNSName string
	// Egress are "host:port" TCP targets ("" = DNSName port 80).
	Egress []string
	// URLs are fetched with HTTP GET (none by default).
	URLs []string
}

// WithDefaults fills what is unset.
func (t Targets) WithDefaults() Targets {
	if t.DNSName == "" {
		t.DNSName = DefaultName
	}
	if len(t.Egress) == 0 {
		t.Egress = []string{net.JoinHostPort(t.DNSName, "80")}
	}
	return t
}

func ms(d time.Duration) uint32 { return uint32(max(d.Milliseconds(), 1)) }

func check(name string, kind kvmnetv1.CheckKind, target string, fam kvmnetv1.Family, timeout time.Duration) *kvmnetv1.Check {
	return &kvmnetv1.Check{Name: name, Kind: kind, Target: target, Family: fam, TimeoutMs: ms(timeout)}
}

func v6(fam kvmnetv1.Family) bool { return fam == kvmnetv1.Family_FAMILY_V6 }

func pick(fam kvmnetv1.Family, n4, n6 string) string {
	if v6(fam) {
		return n6
	}
	return n4
}

// Gateway pings the guest's default gateway of the family.
func Gateway(fam kvmnetv1.Family, timeout time.Duration) *kvmnetv1.Check {
	return check(pick(fam, GatewayV4, GatewayV6), kvmnetv1.CheckKind_CHECK_KIND_PING, "", fam, timeout)
}

// DNS resolves name through the guest's resolver.
func DNS(name string, fam kvmnetv1.Family, timeout time.Duration) *kvmnetv1.Check {
	return check(pick(fam, DNSV4, DNSV6), kvmnetv1.CheckKind_CHECK_KIND_DNS, name, fam, timeout)
}

// DnsmasqTCP connects to libvirt's dnsmasq on the network's bridge IPv4 (bridgeIP:53): it proves
// the guest reaches its host over the NIC's network.
func DnsmasqTCP(bridgeIP string, timeout time.Duration) *kvmnetv1.Check {
	return check(Dnsmasq, kvmnetv1.CheckKind_CHECK_KIND_TCP, net.JoinHostPort(bridgeIP, "53"), kvmnetv1.Family_FAMILY_V4, timeout)
}

// Egress connects over TCP to a host:port beyond the host.
func Egress(target string, fam kvmnetv1.Family, timeout time.Duration) *kvmnetv1.Check {
	return check(pick(fam, EgressV4, EgressV6), kvmnetv1.CheckKind_CHECK_KIND_TCP, target, fam, timeout)
}

// HTTP fetches url over IPv4.
func HTTP(url string, timeout time.Duration) *kvmnetv1.Check {
	return check(HTTPV4, kvmnetv1.CheckKind_CHECK_KIND_HTTP, url, kvmnetv1.Family_FAMILY_V4, timeout)
}

// StatusTimeout is each status check's timeout unless the budget is shorter.
const StatusTimeout = 3 * time.Second

// Status returns the checks that tell the failure modes apart for `guests status`: IPv4 gateway
// ping, TCP to the bridge's dnsmasq, DNS through the guest's resolver, TCP/HTTP egress, and — when
// the guest has global IPv6 — the IPv6 variants ("IPv6 hangs"). Each timeout fits in budget (the
// time left before the collection deadline; the agent runs checks concurrently) so results come
// back before it. Nothing is returned for a guest without an IPv4 default route (diagnose names
// that cause without checks).
func Status(st *kvmnetv1.GuestState, dom snapshot.Domain, nets snapshot.Networks, t Targets, budget time.Duration) []*kvmnetv1.Check {
	t = t.WithDefaults()
	defIf := snapshot.DefaultIfaceV4(st)
	if defIf == "" {
		return nil
	}
	timeout := StatusTimeout
	if budget > 0 {
		timeout = min(timeout, budget-budget/5) // leave room for the round trip
	}
	v4, v6 := kvmnetv1.Family_FAMILY_V4, kvmnetv1.Family_FAMILY_V6
	out := []*kvmnetv1.Check{Gateway(v4, timeout)}
	if bip := bridgeIPFor(st, defIf, dom, nets); bip != "" {
		out = append(out, DnsmasqTCP(bip, timeout))
	}
	out = append(out, DNS(t.DNSName, v4, timeout))
	for _, e := range t.Egress {
		out = append(out, Egress(e, v4, timeout))
	}
	for _, u := range t.URLs {
		out = append(out, HTTP(u, timeout))
	}
	v6s := st.GetIpv6()
	if v6s != nil && !v6s.GetAllDisabled() && (v6s.GetHasGlobalAddress() || v6s.GetHasDefaultRoute()) {
		if v6s.GetHasDefaultRoute() {
			out = append(out, Gateway(v6, timeout))
		}
		out = append(out, DNS(t.DNSName, v6, timeout))
		for _, e := range t.Egress {
			out = append(out, Egress(e, v6, timeout))
		}
	}
	return out
}

// bridgeIPFor is the host's IPv4 on the libvirt network of the guest interface ifname (matched to
// the domain NIC by MAC).
func bridgeIPFor(st *kvmnetv1.GuestState, ifname string, dom snapshot.Domain, nets snapshot.Networks) string {
	for _, it := range st.GetInterfaces() {
		if it.GetName() != ifname {
			continue
		}
		if nic, ok := dom.NIC(snapshot.ParseMAC(it.GetMac())); ok {
			n, _ := nets.Of(nic)
			return n.BridgeIPv4()
		}
	}
	return ""
}
