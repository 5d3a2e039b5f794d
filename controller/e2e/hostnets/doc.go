// Package hostnets is the lab e2e for libvirt networks without NAT (build tag lab): a guest on a
// routed network (<forward mode='route' dev='up0'/>) and one on an open network, in a lab of their
// own (scripts/lab/routed). The stand-in internet namespace plays the upstream router: without its
// route back, kvmnetctl must say the return route is unknown and blame no NAT rule and nothing on
// the host; with it, a break the host can see (ip_forward=0, a foreign FORWARD REJECT) is detected
// with evidence, host fix repairs what it owns, and the guest's own curl works again. The bridge
// tutorial's move of the uplink into br0 (scripts/lab/hostbridge) leaves the routed network's
// <forward dev='up0'> behind: network_forward_dev_mismatch, repaired by the net-edit it names.
//
// The lab is KVMNET_LAB_HOSTNETS_NAME (default KVMNET_LAB_NAME + "-hostnets"), its own, so that
// controller/e2e's host-wide checks never see these networks.
package hostnets
