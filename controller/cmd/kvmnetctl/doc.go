// Command kvmnetctl is the host side of kvmnet: it diagnoses and fixes the networking of KVM/libvirt
// guests, talking to libvirt, the host's network stack and firewall, and to kvmnet-agent inside each
// guest.
//
// Each command group lives in its own file (agent.go, guests.go, host.go, ...) and only wires flags
// to packages under controller/; the logic lives in those packages. root.go holds the global flags
// (-c/--connect, -o/--output, --timeout) and the exit code convention: 0 ok, 1 error-level findings or
// a failed fix, 2 usage or connection errors.
package main
