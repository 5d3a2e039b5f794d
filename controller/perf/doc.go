// Package perf holds kvmnet's end-to-end benchmarks and fault tests that span the agent and the
// controller (see BENCHMARKS.md and scripts/bench.sh): `guests status` fan-out over N guests
// enumerated through libvirt's test driver, each served by a real agent server (agent/server over
// agent/service with fake sensors) behind an emulated virtio-serial channel; the virsh baseline a
// user scripts today; RPC latency; and the footprint of the real kvmnet-agent binary in a throwaway
// network namespace.
//
// The package has no non-test code besides this file. Its tests may import agent/ and controller/
// packages alike; nothing may import it.
package perf
