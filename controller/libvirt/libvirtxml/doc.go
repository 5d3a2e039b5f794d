// Package libvirtxml parses the libvirt XML kvmnet needs (network and domain descriptions, dnsmasq's lease
// status file) into the plain controller/snapshot model, holds the stock "default" network XML, and
// checks whether a subnet is free on the host. It is pure: no cgo, no I/O, so it is fuzzed and unit
// tested without libvirt.
//
// It must never import libvirt.org/go/libvirt, an adapter package, or anything doing I/O.
package libvirtxml
