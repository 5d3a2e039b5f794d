// Package qga talks to qemu-guest-agent in a guest through libvirt's virDomainQemuAgentCommand: it
// builds the QMP commands kvmnet needs (guest-ping, guest-info, guest-get-osinfo,
// guest-network-get-interfaces, guest-get-host-name, guest-file-*, guest-exec), and parses their
// replies into bounded, sanitised values. The guest is untrusted: every reply is capped in size, every
// list in length, every string in length and stripped of control characters before it leaves this
// package.
//
// It reaches libvirt only through the Commander interface (controller/libvirt's Source implements it),
// so it has no cgo and its tests use a fake. It must never import controller/libvirt, the CLI or
// diagnose; it may import controller/snapshot (data only) to fill the guest's QGA view.
package qga
