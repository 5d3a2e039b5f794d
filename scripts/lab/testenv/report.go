package testenv

import (
	"fmt"
	"strings"
)

// DHCPReport gathers what explains a DHCP exchange that did not finish, for a failure message: the
// NetworkManager log (its DHCP client's own lines included), the dnsmasq log (--log-dhcp), and the
// links, addresses and bridge port states of both namespaces. Any of nm, dhcp, guest, host may be nil.
func DHCPReport(nm *NM, dhcp *Dnsmasq, guest, host *Netns) string {
	var b strings.Builder
	section := func(title, body string) {
		fmt.Fprintf(&b, "----- %s -----\n%s", title, body)
		if !strings.HasSuffix(body, "\n") {
			b.WriteByte('\n')
		}
	}
	if nm != nil {
		section("NetworkManager ("+nm.Proc.State()+") log", nm.Proc.Output())
	}
	if dhcp != nil {
		section("dnsmasq ("+dhcp.Proc.State()+") log", dhcp.Proc.Output())
	}
	for _, ns := range []struct {
		who string
		ns  *Netns
	}{{"guest", guest}, {"host", host}} {
		if ns.ns == nil {
			continue
		}
		for _, argv := range [][]string{{"ip", "-s", "-d", "link", "show"}, {"ip", "addr", "show"}, {"bridge", "-d", "link", "show"}, {"ss", "-uapn"}, {"nstat", "-az", "Udp*", "Ip*In*"}} {
			out, err := ns.ns.Run(argv...)
			if err != nil {
				out += "\n" + err.Error()
			}
			section(ns.who+" "+ns.ns.Name+": "+strings.Join(argv, " "), out)
		}
	}
	return b.String()
}

// Report is DHCPReport for the lab: NetworkManager's and dnsmasq's logs and both namespaces' links.
func (l *NMLab) Report() string { return DHCPReport(l.NM, l.DHCP, l.Guest, l.Host) }
