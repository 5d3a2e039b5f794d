// Package snapshot holds the plain data the controller gathers about one host and its guests:
// libvirt networks and domains, bridges, sysctls, firewall verdicts, and each guest agent's view.
//
// It is filled by the adapters (controller/libvirt, controller/hostnet, controller/firewall,
// controller/agentclient) and read by pure code (controller/diagnose, controller/fixplan). It holds
// data only: it must never import an adapter, do I/O, or depend on cgo.
package snapshot
