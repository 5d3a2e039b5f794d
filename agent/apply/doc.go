// Package apply turns an ApplyRequest into changes and makes them safely.
//
// It owns: validation of the request (MACs, timeouts within bounds, the config opt-outs), the pure
// plan computation (Compute: request + current state → ordered Steps, each with a readable Change),
// and execution (Applier): NetworkManager changes inside an NM checkpoint, file changes through
// agent/files with a snapshot, live sysctls with their old values, an agent-side timer that rolls
// everything back unless Confirm arrives in time, and Rollback on request or on any failed step.
// Every change is logged.
//
// It must never import gRPC server code or netlink: the current NICs come through the NICLister seam
// and NetworkManager through the NM interface (agent/nm's *Client satisfies it).
package apply
