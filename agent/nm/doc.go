// Package nm talks to NetworkManager over D-Bus for kvmnet-agent: whether it runs and its version,
// devices, connection profiles (with kvmnet's own marked by user data), the kvm-dhcp-<ifname> profile
// kvmnet manages, activation and waiting for IPv4, checkpoints, and change signals for Watch.
//
// Every D-Bus call carries a deadline (Options.CallTimeout) and the NO_AUTO_START flag, so a missing
// NetworkManager is reported at once and a hung one within seconds, never as a hang. The connection is
// injected (New) or dialled from an explicit address (Dial); the process-wide dbus.SystemBus() is never
// used, so tests point a Client at a private bus.
//
// It uses github.com/Wifx/gonetworkmanager/v2 for NetworkManager's enums and settings map type only:
// that library's objects are bound to dbus.SystemBus() and make calls without deadlines, and several of
// its methods are broken in v2.2.0 (CheckpointAdjustRollbackTimeout, CheckpointDestroy(nil),
// Device.Reapply: the first panics, the others fail or do nothing), so all calls are made here with godbus' CallWithContext.
//
// It owns no files and must never import netlink, gRPC or kvmnet's file-writing code: it knows
// NetworkManager's D-Bus API, nothing else.
package nm
