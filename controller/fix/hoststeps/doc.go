// Package hoststeps is the real side of `kvmnetctl host fix`: one entry per fixplan host step kind,
// each computing the exact commands (rules, XML) the step amounts to and the action that makes them,
// together, so what runs is what was shown. It acts through controller/libvirt, controller/hostnet,
// controller/firewall (through the injected runner) and controller/channel; controller/fix runs the
// table and never sees those adapters.
package hoststeps
