// Package testenv builds the isolated worlds kvmnet's integration tests run in: network namespaces,
// veth pairs, and daemons (dbus-daemon, NetworkManager, dnsmasq, libvirtd) started inside them and
// stopped by PID when the test ends, even when it fails.
//
// Nothing here may touch the machine's own interfaces, routing table, firewall or system D-Bus.
// It is imported by _test.go files only.
package testenv
