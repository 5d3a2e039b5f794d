// Package managedfile is the only way kvmnet-agent writes files in the guest.
//
// It owns: atomic writes (temporary file in the same directory, fsync, rename, fsync of the
// directory), the "managed by kvmnet" header every written file carries, the backup of a file's
// previous content under <root>/var/lib/kvmnet/backup/ before kvmnet first changes it, the state
// file <root>/var/lib/kvmnet/state.json listing every managed file, and undoing changes (Restore,
// RestoreAll, Remove, and in-memory Snapshots for checkpoint rollback).
//
// Every path is taken relative to a root directory given to New and must name a file directly
// inside one of the allow-listed directories (etc/sysctl.d, etc/apt/apt.conf.d, etc/dnf and the
// network stacks' etc/netplan, etc/systemd/network, etc/network, etc/network/interfaces.d by
// default). "..", symlinks on the way, and anything outside the allow-list are refused, so a path
// that arrives over the wire can never make the agent write elsewhere.
//
// It must never import NetworkManager, netlink, gRPC or the wire API (proto/): it knows files,
// nothing else; callers turn a Result into a kvmnetv1.Change.
package managedfile
