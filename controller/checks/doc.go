// Package checks builds the connectivity checks a guest agent runs (RunChecks): one set of names and
// one default target for `kvmnetctl guests status` (controller/collect) and for the verification of
// `kvmnetctl guests fix` (controller/fixplan). controller/diagnose reads the results by kind, family
// and target, so it does not depend on the names.
//
// It is pure: plain structs in, proto messages out, no I/O. It must never import an adapter.
package checks
