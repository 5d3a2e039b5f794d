// Package fleet asks many hosts for their kvmnet diagnosis at once and joins the answers into one
// table: each host within its own deadline, a host that fails is a row saying why, never an abort.
//
// It knows hosts only through a Query function (the CLI runs kvmnetctl over ssh with
// controller/remote); it must never import the CLI, ssh or libvirt.
package fleet
