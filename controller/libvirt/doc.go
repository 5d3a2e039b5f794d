// Package libvirt reads the host's libvirt state through libvirt.org/go/libvirt (cgo) into the plain
// controller/snapshot model — networks (with their DHCP leases) and domains (NICs, channels, vsock
// CID) — and performs the few libvirt mutations kvmnet's fixes need (define/start/autostart/restart a
// network, define a domain, attach a device live).
//
// XML parsing lives in the pure subpackage libvirtxml. This package owns the connection: URI resolution
// (-c, LIBVIRT_DEFAULT_URI, qemu:///system), qemu:///session detection, deadlines around calls that
// libvirt does not bound itself, and errors that tell the user what to do.
//
// It must never import controller/diagnose, controller/output, the CLI, or agent packages; it reads
// and mutates libvirt only, and never touches host networking directly (controller/hostnet does).
package libvirt
