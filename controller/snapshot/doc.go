// Package snapshot holds the plain data the controller gathers about one host and its guests:
// libvirt networks and domains, bridges, sysctls, firewall verdicts, and each guest agent's view.
//
// It is filled by the adapters (controller/libvirt, controller/hostnet, controller/firewall,
// controller/agentclient) and read by pure code (controller/diagnose, controller/fixplan). Facts
// derived from the data live here once, as methods (the network of a NIC, the host's IPv4 on a
// network, a guest's default interface, MACs normalised at the sources). It must never import an
// adapter, do I/O, or depend on cgo.
package snapshot
