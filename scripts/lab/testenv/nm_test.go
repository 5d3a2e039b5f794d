package testenv

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestNMLabLeases proves the harness: NetworkManager on the private bus manages a veth named like a
// guest NIC (no udev), and a profile added with nmcli gets a lease from dnsmasq on the peer bridge.
func TestNMLabLeases(t *testing.T) {
	Require(t, "ip", "dbus-daemon", "NetworkManager", "dnsmasq", "nmcli", "unshare")
	lab := NewNMLab(t, NMLabOptions{NICs: []GuestNIC{
		{Name: "enp1s0", MAC: "52:54:00:77:00:01", OnBridge: true},
		{Name: "ens3", MAC: "52:54:00:77:00:02"},
	}})
	nmcli := func(args ...string) string {
		cmd := exec.Command("nmcli", args...)
		cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+lab.Bus.Address)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("nmcli %v: %v: %s\n%s", args, err, out, lab.Report())
		}
		return string(out)
	}
	var devs string
	if err := WaitFor(15*time.Second, 100*time.Millisecond, func() (bool, error) {
		devs = nmcli("-t", "-f", "DEVICE,STATE", "device")
		return strings.Contains(devs, "enp1s0:disconnected") && strings.Contains(devs, "ens3:disconnected"), nil
	}); err != nil {
		t.Fatalf("devices not managed: %v: %s", err, devs)
	}
	nmcli("connection", "add", "type", "ethernet", "ifname", "enp1s0", "con-name", "t-dhcp",
		"ipv4.method", "auto", "ipv6.method", "ignore")
	nmcli("--wait", "20", "connection", "up", "t-dhcp")
	if err := WaitFor(20*time.Second, 100*time.Millisecond, func() (bool, error) {
		return lab.DHCP.LeaseFor("52:54:00:77:00:01") != "", nil
	}); err != nil {
		t.Fatalf("no lease: %v\n%s", err, lab.Report())
	}
	addrs := lab.IPv4("enp1s0")
	if len(addrs) != 1 || !strings.HasPrefix(addrs[0], "10.77.0.1") {
		t.Fatalf("enp1s0 addresses %v, want one 10.77.0.1xx/24", addrs)
	}
	if _, err := os.Stat(lab.NM.ConnDir + "/t-dhcp.nmconnection"); err != nil {
		t.Fatalf("keyfile not in the private keyfile dir: %v", err)
	}
}
