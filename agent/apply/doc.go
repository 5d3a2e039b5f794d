// Package apply turns an ApplyRequest into changes and makes them safely.
//
// It owns: validation of the request (MACs, timeouts within bounds, the config opt-outs), the pure
// plan computation (Compute: request + current state → ordered Steps, each with a readable Change),
// and execution (Applier): every NIC through the backend agent/netstack chose for it, NetworkManager
// (profiles planned here from its state, activated by its backend, all inside its checkpoint, which
// the backend's Checkpointer makes, re-arms, destroys and rolls back) or a file-based stack; file
// changes through agent/managedfile with a snapshot, live sysctls with their old values, an
// agent-side timer that rolls everything back unless Confirm arrives in time, and Rollback on request
// or on any failed step. Every change is logged.
//
// NetworkManager restarting (stopped and started again, as `systemctl restart NetworkManager` does)
// loses its checkpoints, which live in its memory only, while its saved profiles survive on disk. The
// Applier notes which NetworkManager process (its unique bus name, through the NMRestarts seam) holds
// the checkpoint — read before CheckpointCreate, so a crash right after it answers is noticed too —
// and records on its own side the profiles an Apply created (uuid), deleted and changed (settings
// before), and which profile was active on each touched interface. It guarantees:
//   - Restart during Apply (e.g. in the lease wait): Apply returns as soon as NetworkManager answers
//     again (waiting at most Options.NMRestartWait, default 10 s) with ErrRolledBack naming the
//     restart, after restoring from its record: created profiles deleted, deleted ones re-added with
//     their uuids, changed settings put back, the previous profile re-activated (and its IPv4 awaited
//     when it had one). Nothing stays pending.
//   - NetworkManager stopped during Apply and not back within NMRestartWait: Apply returns ErrNMGone
//     telling the user to start NetworkManager; nothing is restored yet and the checkpoint stays
//     pending, marked "Apply did not complete" (first Change of GetState's pending checkpoint). Only
//     Rollback is accepted (Confirm is refused); Rollback restores once NetworkManager runs, and so
//     does the deadline (retried every RestoreRetry while NetworkManager is away).
//   - Restart while a checkpoint is pending (after Apply, before Confirm): nothing changes for the
//     caller. Confirm keeps the changes (nothing left to destroy in NetworkManager); Rollback and the
//     deadline restore from the record instead of NetworkManager's checkpoint. NetworkManager's own
//     fallback timer (for an agent that dies too) is gone with the restart.
//
// A crash (SIGKILL, segfault, OOM kill; systemd's Restart=on-failure brings it back) is the same
// event for the agent as a clean restart: the bus releases the dead process's name when its socket
// closes, so the next call gets "not running" (or, in flight, "disconnected") and the next process
// has a new bus name.
//
// The agent's own death is covered by a Record on disk (record.go): saved atomically before the
// first change and again before every change that adds to it (a profile created, changed or
// deleted, a sysctl's old value), it holds the previous files, the live sysctl values, the profiles
// and NetworkManager's checkpoint, the deadline and the boot id. At start-up (Resume) the next agent
// process restores from it when the Apply never finished, the deadline passed or the boot id changed
// (a reboot took NetworkManager's checkpoint along: profiles come back from the record); otherwise
// it takes the checkpoint over until its deadline.
//
// It must never import gRPC server code or netlink: the current NICs come through the NICLister seam
// and NetworkManager through agent/netstack's NetworkManager backend (Options.Stacks', or one built
// over Options.NM, which agent/nm's *Client satisfies).
package apply
