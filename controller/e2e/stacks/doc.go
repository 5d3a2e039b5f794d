// Package stacks is the lab e2e for guests without NetworkManager (build tag lab): one guest per
// stack image (scripts/lab/image --stack netplan|networkd|ifupdown), a hard-coded wrong interface
// name planted in the stack's own configuration, then a fix the host never confirms (the original
// files come back), kvmnetctl guests fix, the guest's own curl, and a reboot (still healthy).
//
// KVMNET_LAB_STACKS selects the stacks (default "netplan,networkd,ifupdown"); the lab is
// KVMNET_LAB_STACKS_NAME (default KVMNET_LAB_NAME + "-stacks"), its own, so it can run beside
// controller/e2e's suite.
package stacks
