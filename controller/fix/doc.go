// Package fix executes fix plans from controller/fixplan: guest plans through the guest's agent
// (dry run, confirmation, Apply under a checkpoint, verification from the host side, then Confirm or
// Rollback), and host steps through host adapters (each printed as its exact command, confirmed, run,
// and re-checked).
//
// It reaches the world only through the small interfaces declared here; kvmnetctl wires the real
// adapters (controller/collect, controller/agentclient, controller/libvirt, controller/hostnet,
// controller/firewall, controller/channel). It must not import cobra and never prints: what it has to
// say goes out as Events, which controller/output renders.
package fix
