// Package output is kvmnetctl's one presentation layer: the -o format (parsed once), the palette,
// the table layout, the JSON and YAML encoders, the sanitiser every table and text path applies to
// what it prints, and the printers of each command's result: `guests status` and `host check`
// tables (diagnose.Report), `agent state`, and the events of `guests fix` / `host fix`.
//
// A value renders as a table when it implements Table (optionally RowStyler, CellStyler and
// Summarizer); JSON and YAML work for any value: protobuf messages through protojson with proto field
// names, everything else through encoding/json without HTML escaping, both re-indented so the same
// value always prints the same bytes.
//
// It reads the result types it prints (diagnose, fixplan, fix, the proto messages) and never
// computes them: it must not import libvirt, grpc, the agent client or any adapter.
package output
