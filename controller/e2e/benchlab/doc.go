// Package benchlab measures RPC latency over the real virtio-serial channel of a booted lab guest
// (build tag `lab`; run it with `make bench-lab`, i.e. scripts/lab/bench, which starts the lab and one
// guest, runs the compiled benchmark inside the lab host's namespaces and tears everything down).
//
// BenchmarkLabRPC dials the guest's org.kvmnet.agent.0 channel socket with controller/agentclient
// (a `serial:` address, as kvmnetctl does) and times GetState and RunChecks; BenchmarkLabStatusCLI
// times the whole CLI path, one `kvmnetctl guests status` process per iteration. What to reach comes
// from the environment the script sets (KVMNET_LAB_BENCH_AGENT, KVMNET_LAB_BENCH_VM, KVMNET_LAB_URI,
// KVMNETCTL); a missing variable fails the benchmark with what to run instead.
//
// It is apart from package e2e because it imports controller/agentclient, which e2e must not. The
// package has no non-test code besides this file; nothing may import it. It never opens AF_VSOCK
// (only `serial:` addresses are dialed) and starts no namespace, daemon or guest itself.
package benchlab
