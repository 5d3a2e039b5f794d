// Package output renders kvmnetctl results as a table (for people), JSON or YAML (for programs).
// A value renders as a table when it implements Table (optionally RowStyler and Summarizer); JSON
// and YAML work for any value: protobuf messages through protojson with proto field names, everything
// else through encoding/json, both re-indented so the same value always prints the same bytes.
//
// It owns presentation only and must never import libvirt, the agent client, or any package that
// computes what it prints.
package output
