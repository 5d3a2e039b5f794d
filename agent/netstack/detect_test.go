package netstack

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// fakeNM answers ManagesDevice from a map; a missing device is "unmanaged".
type fakeNM struct {
	managed map[string]bool
	err     error
}

func (f fakeNM) ManagesDevice(_ context.Context, ifname string) (bool, string, error) {
	if f.err != nil {
		return false, "", f.err
	}
	if f.managed[ifname] {
		return true, "nm_device_state=activated", nil
	}
	return false, "nm_device_state=unmanaged", nil
}

func build(t *testing.T, fx map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, c := range fx {
		abs := filepath.Join(root, p)
		if strings.HasSuffix(p, "/") {
			if err := os.MkdirAll(abs, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(abs, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

const mac1 = "52:54:00:aa:00:01"

// networkdState is /run/systemd/netif/state as a running networkd writes it (Debian 12, systemd 252).
const networkdState = "# This is private data. Do not parse.\nOPER_STATE=routable\nCARRIER_STATE=carrier\nADDRESS_STATE=routable\nONLINE_STATE=online\n"

func enp1s0() []*kvmnetv1.Interface {
	return []*kvmnetv1.Interface{{Name: "enp1s0", Mac: mac1, Driver: "virtio_net"}}
}

const (
	nmStack   = kvmnetv1.NetworkStack_NETWORK_STACK_NETWORK_MANAGER
	networkd  = kvmnetv1.NetworkStack_NETWORK_STACK_NETWORKD
	ifupdown  = kvmnetv1.NetworkStack_NETWORK_STACK_IFUPDOWN
	noneStack = kvmnetv1.NetworkStack_NETWORK_STACK_NONE
)

func TestDetect(t *testing.T) {
	debianStale := "# The loopback network interface\nauto lo\niface lo inet loopback\n\n# The primary network interface\nallow-hotplug eth0\niface eth0 inet dhcp\n"
	tests := []struct {
		name   string
		fx     map[string]string
		nm     NMProbe
		stack  kvmnetv1.NetworkStack
		detail string
	}{
		{
			name:   "NetworkManager manages it",
			nm:     fakeNM{managed: map[string]bool{"enp1s0": true}},
			stack:  nmStack,
			detail: "nm_manages=yes nm_device_state=activated",
		},
		{
			name: "networkd runtime state (ubuntu server via netplan)",
			fx: map[string]string{
				"sys/class/net/enp1s0/ifindex":   "2\n",
				"run/systemd/netif/state":        networkdState,
				"run/systemd/netif/links/2":      "# This is private data. Do not parse.\nADMIN_STATE=configured\nOPER_STATE=routable\nNETWORK_FILE=/run/systemd/network/10-netplan-enp1s0.network\n",
				"etc/netplan/50-cloud-init.yaml": "network:\n  version: 2\n  ethernets:\n    enp1s0:\n      match:\n        macaddress: \"52:54:00:AA:00:01\"\n      dhcp4: true\n      set-name: enp1s0\n",
			},
			nm:     fakeNM{err: errors.New("system bus not found")},
			stack:  kvmnetv1.NetworkStack_NETWORK_STACK_NETPLAN,
			detail: "nm=unavailable nm_error='system bus not found' netplan_file=/etc/netplan/50-cloud-init.yaml netplan_id=enp1s0 netplan_renderer=networkd networkd_admin_state=configured networkd_network_file=/run/systemd/network/10-netplan-enp1s0.network",
		},
		{
			name: "netplan hands it to NetworkManager",
			fx: map[string]string{
				"etc/netplan/01-network-manager-all.yaml": "network:\n  version: 2\n  renderer: NetworkManager\n",
				"etc/netplan/90-nic.yaml":                 "network:\n  ethernets:\n    nic0:\n      match: {macaddress: \"52:54:00:aa:00:01\"}\n      dhcp4: true\n",
			},
			nm:     fakeNM{},
			stack:  nmStack,
			detail: "nm_manages=no nm_device_state=unmanaged netplan_file=/etc/netplan/90-nic.yaml netplan_id=nic0 netplan_renderer=NetworkManager",
		},
		{
			name:   "netplan with a hard-coded stale name",
			fx:     map[string]string{"etc/netplan/50-cloud-init.yaml": "network:\n  version: 2\n  ethernets:\n    eth0:\n      dhcp4: true\n"},
			stack:  noneStack,
			detail: `nm=not_asked netplan_stale=eth0 netplan_missing=enp1s0 need='network: {version: 2, ethernets: {enp1s0: {match: {macaddress: "52:54:00:aa:00:01"}, set-name: enp1s0, dhcp4: true}}}'`,
		},
		{
			name: "networkd .network by MAC, networkd running",
			fx: map[string]string{
				"run/systemd/netif/state":                  networkdState,
				"etc/systemd/network/20-wired.network":     "[Match]\nMACAddress=52:54:00:AA:00:01\n\n[Network]\nDHCP=yes\n",
				"usr/lib/systemd/network/20-wired.network": "[Match]\nName=*\n",
			},
			stack:  networkd,
			detail: "nm=not_asked networkd_network_file=/etc/systemd/network/20-wired.network",
		},
		{
			// tmpfiles.d/systemd-network.conf makes /run/systemd/netif/links on every Debian 12
			// boot; only networkd's own state file says it runs.
			name: "networkd .network by name glob, networkd not running",
			fx: map[string]string{
				"etc/systemd/network/20-wired.network": "[Match]\nName=en*\n[Network]\nDHCP=yes\n",
				"run/systemd/netif/links/":             "",
				"run/systemd/netif/leases/":            "",
			},
			stack:  noneStack,
			detail: "nm=not_asked networkd_network_file=/etc/systemd/network/20-wired.network networkd_running=no",
		},
		{
			name: "networkd .network for other names only",
			fx: map[string]string{
				"run/systemd/netif/state":                      networkdState,
				"etc/systemd/network/20-wired.network":         "[Match]\nName=!en*\n[Network]\nDHCP=yes\n",
				"usr/lib/systemd/network/80-container.network": "[Match]\nVirtualization=container\nName=host0\n",
			},
			stack:  noneStack,
			detail: `nm=not_asked networkd_network_missing=enp1s0 need='/etc/systemd/network/20-enp1s0.network: [Match]\nMACAddress=52:54:00:aa:00:01\n[Network]\nDHCP=ipv4'`,
		},
		{
			name: "ifupdown via source glob",
			fx: map[string]string{
				"etc/network/interfaces":          "auto lo\niface lo inet loopback\nsource /etc/network/interfaces.d/*\n",
				"etc/network/interfaces.d/enp1s0": "allow-hotplug enp1s0\niface enp1s0 inet dhcp\niface enp1s0 inet6 auto\n",
			},
			nm:     fakeNM{},
			stack:  ifupdown,
			detail: "nm_manages=no nm_device_state=unmanaged ifupdown_stanza='enp1s0 inet dhcp,inet6 auto' ifupdown_file=/etc/network/interfaces.d/enp1s0 ifupdown_auto=yes",
		},
		{
			name: "ifupdown via relative source-directory; invalid names skipped",
			fx: map[string]string{
				"etc/network/interfaces":           "source-directory interfaces.d\n",
				"etc/network/interfaces.d/nic.cfg": "iface enp1s0 inet static\n  address 10.0.0.2/24\n",
				"etc/network/interfaces.d/nic":     "iface \\\n enp1s0 inet manual\n",
			},
			stack:  ifupdown,
			detail: "nm=not_asked ifupdown_stanza='enp1s0 inet manual' ifupdown_file=/etc/network/interfaces.d/nic ifupdown_auto=no",
		},
		{
			name:   "debian installer's eth0 stanza, NIC is enp1s0",
			fx:     map[string]string{"etc/network/interfaces": debianStale},
			stack:  noneStack,
			detail: `nm=not_asked ifupdown_stale=eth0 ifupdown_stanza_missing=enp1s0 need='auto enp1s0\niface enp1s0 inet dhcp'`,
		},
		{
			name:   "commented-out stanza does not count",
			fx:     map[string]string{"etc/network/interfaces": "#auto enp1s0\n#iface enp1s0 inet dhcp\n"},
			stack:  noneStack,
			detail: `nm=not_asked ifupdown_stanza_missing=enp1s0 need='auto enp1s0\niface enp1s0 inet dhcp'`,
		},
		{
			name:   "nothing installed",
			fx:     map[string]string{"etc/": ""},
			nm:     fakeNM{},
			stack:  noneStack,
			detail: "nm_manages=no nm_device_state=unmanaged",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := New(Options{Root: build(t, tc.fx), NM: tc.nm})
			if err != nil {
				t.Fatal(err)
			}
			r, err := d.Detect(context.Background(), enp1s0(), "enp1s0")
			if err != nil {
				t.Fatal(err)
			}
			if r.Stack != tc.stack || r.Detail != tc.detail {
				t.Fatalf("got  %v %s\nwant %v %s", r.Stack, r.Detail, tc.stack, tc.detail)
			}
		})
	}
}

func TestAnnotateMultiNIC(t *testing.T) {
	root := build(t, map[string]string{
		"etc/network/interfaces": "auto enp2s0\niface enp2s0 inet static\n address 192.168.100.5/24\n",
	})
	d, _ := New(Options{Root: root, NM: fakeNM{managed: map[string]bool{"enp1s0": true}}})
	ifaces := []*kvmnetv1.Interface{
		{Name: "enp1s0", Mac: mac1},
		{Name: "enp2s0", Mac: "52:54:00:aa:00:02"},
	}
	if err := d.Annotate(context.Background(), ifaces); err != nil {
		t.Fatal(err)
	}
	if ifaces[0].Stack != nmStack || ifaces[1].Stack != ifupdown {
		t.Fatalf("stacks %v %v", ifaces[0].Stack, ifaces[1].Stack)
	}
	if !strings.Contains(ifaces[1].StackDetail, "ifupdown_auto=yes") {
		t.Fatalf("detail %s", ifaces[1].StackDetail)
	}
	if _, err := d.Detect(context.Background(), ifaces, "eth9"); err == nil {
		t.Fatal("unknown interface accepted")
	}
}

func TestBrokenConfigStillDecides(t *testing.T) {
	root := build(t, map[string]string{
		"etc/netplan/50-bad.yaml": "network: [unclosed\n",
		"etc/network/interfaces":  "source nested\n",
		"etc/network/nested":      "source interfaces\niface enp1s0 inet dhcp\n",
	})
	d, _ := New(Options{Root: root})
	ifaces := enp1s0()
	err := d.Annotate(context.Background(), ifaces)
	if err == nil || !strings.Contains(err.Error(), "/etc/netplan/50-bad.yaml") {
		t.Fatalf("err = %v", err)
	}
	if ifaces[0].Stack != ifupdown {
		t.Fatalf("stack %v (%s)", ifaces[0].Stack, ifaces[0].StackDetail)
	}
}

func TestNewNeedsRoot(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Fatal("New without root accepted")
	}
}
