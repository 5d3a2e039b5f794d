// Package e2e is kvmnet's end-to-end suite against real guests: Debian 12 VMs under a private libvirtd
// in the lab namespaces of scripts/lab (build tag `lab`; run it with scripts/lab/e2e.sh).
//
// It drives only the built binaries and the lab scripts — bin/kvmnetctl through scripts/lab/ctl, faults
// through scripts/lab/fault, guests through scripts/lab/vm — so it checks the product as users run it
// and never imports kvmnet's internal packages (it must not import agent/... or controller/... code).
// Guest-side evidence comes from qemu-guest-agent (guest-exec), independent of kvmnet's own agent.
package e2e
