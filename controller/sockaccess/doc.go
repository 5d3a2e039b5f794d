// Package sockaccess answers "which non-root users on this host can connect() to a unix socket?" — the
// question behind the channel_socket_exposed finding: whoever can connect to a guest's virtio-serial
// channel socket speaks to that guest's kvmnet agent, which runs as root.
//
// The evaluation (Evaluate) is pure: it takes the owner, group and mode of the socket and of every
// directory above it, plus the accounts (/etc/passwd, /etc/group), and names who gets in ("everyone",
// "group kvm: alice, bob", single users). The adapter (Inspector) stats a real path, optionally through
// /proc/PID/root to see another mount namespace, and reads the account files. QEMUUser finds the user
// QEMU runs as (qemu.conf, a running QEMU process, the owner of /var/lib/libvirt/qemu).
//
// It fills snapshot.SocketAccess and snapshot.Domain.ChannelAccess; grading the finding is
// controller/diagnose's job. It must never import libvirt (no cgo), the diagnose package or the CLI.
// POSIX ACLs are detected and reported in the evidence, not evaluated.
package sockaccess
