// Package installagent is the lab end-to-end test of issue 17 (build tag `lab`): a Debian 12 guest
// with qemu-guest-agent and without kvmnet-agent, its network broken, seen through qemu-guest-agent,
// repaired by `kvmnetctl guests install-agent` and `guests fix`; and the bad inputs, each refused with
// a clear error and nothing installed. It has its own lab (KVMNET_LAB_QGA_NAME, default
// KVMNET_LAB_NAME + "-qga") so it can run beside controller/e2e's suite, and drives only the built
// binaries and the lab scripts, like controller/e2e.
package installagent
