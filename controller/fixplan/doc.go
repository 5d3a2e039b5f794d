// Package fixplan turns diagnose findings into fix plans: a guest plan (actions for the guest agent's
// Apply, with the checks that prove it worked) and host steps (network, sysctl, firewall and channel
// changes, each with the exact command it amounts to).
//
// It is pure decision code: plain structs in, plain structs out, no I/O. It must never import an
// adapter (libvirt, netlink, firewall runner, gRPC client); controller/fix executes its plans.
package fixplan
