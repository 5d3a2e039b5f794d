package link

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeNIC lays out sysfs under root the way the kernel does (relative symlinks): class/net/<name>
// links into devices/, device links to the bus device, driver links into bus/*/drivers.
type fakeNIC struct {
	name   string
	devDir string // path under sys/devices of the bus device, "" for a virtual interface
	bus    string
	driver string
}

func (n fakeNIC) create(t *testing.T, root string) {
	t.Helper()
	sys := filepath.Join(root, "sys")
	mk := func(p string) {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, at string) {
		mk(filepath.Dir(at))
		if err := os.Symlink(target, at); err != nil {
			t.Fatal(err)
		}
	}
	rel := func(from, to string) string {
		r, err := filepath.Rel(from, to)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	var netDir string
	if n.devDir == "" {
		netDir = filepath.Join(sys, "devices/virtual/net", n.name)
		mk(netDir)
	} else {
		dev := filepath.Join(sys, "devices", n.devDir)
		netDir = filepath.Join(dev, "net", n.name)
		mk(netDir)
		drv := filepath.Join(sys, "bus", n.bus, "drivers", n.driver)
		mk(drv)
		link(rel(dev, drv), filepath.Join(dev, "driver"))
		link(rel(netDir, dev), filepath.Join(netDir, "device"))
	}
	link(rel(filepath.Join(sys, "class/net"), netDir), filepath.Join(sys, "class/net", n.name))
}

func TestDeviceInfo(t *testing.T) {
	root := t.TempDir()
	nics := []fakeNIC{
		{"enp1s0", "pci0000:00/0000:00:02.0/0000:01:00.0/virtio0", "virtio", "virtio_net"},
		{"ens3", "pci0000:00/0000:00:03.0", "pci", "e1000"},
		{"veth0", "", "", ""},
		{"usb0", "pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0", "usb", "cdc_ether"},
	}
	for _, n := range nics {
		n.create(t, root)
	}
	tests := []struct {
		name, driver, pci string
	}{
		{"enp1s0", "virtio_net", "0000:01:00.0"},
		{"ens3", "e1000", "0000:00:03.0"},
		{"veth0", "", ""},
		{"usb0", "cdc_ether", "0000:00:14.0"},
		{"missing0", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			driver, pci := deviceInfo(root, tc.name)
			if driver != tc.driver || pci != tc.pci {
				t.Fatalf("deviceInfo(%s) = %q, %q; want %q, %q", tc.name, driver, pci, tc.driver, tc.pci)
			}
		})
	}
	// The fixture must look like the kernel's: a relative class link.
	target, err := os.Readlink(filepath.Join(root, "sys/class/net/enp1s0"))
	if err != nil || !strings.HasPrefix(target, "../../devices/") {
		t.Fatalf("fixture link = %q, %v", target, err)
	}
}
