package link

import (
	"os"
	"path/filepath"
	"regexp"
)

var pciAddr = regexp.MustCompile(`^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$`)

// deviceInfo reads the kernel driver and PCI address of interface name from
// <sysRoot>/sys/class/net/<name>/device. Virtual interfaces (veth, bridge) have no device: both
// values are empty. For virtio NICs the device is virtioN and the PCI function is its parent.
func deviceInfo(sysRoot, name string) (driver, pci string) {
	dev := filepath.Join(sysRoot, "sys", "class", "net", name, "device")
	if target, err := os.Readlink(filepath.Join(dev, "driver")); err == nil {
		driver = filepath.Base(target)
	}
	real, err := filepath.EvalSymlinks(dev)
	if err != nil {
		return driver, ""
	}
	// Walk up from the device to the first PCI function (the device itself for most NICs, the
	// parent for virtio), stopping at the sysfs devices directory.
	for p := real; p != "/" && p != "." && filepath.Base(p) != "devices"; p = filepath.Dir(p) {
		if pciAddr.MatchString(filepath.Base(p)) {
			return driver, filepath.Base(p)
		}
	}
	return driver, ""
}
