#!/usr/bin/env bash
# Runs the benchmarks that carry kvmnet's speed and memory targets and prints their numbers.
# Results for this machine are recorded in BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp)
trap 'rm -f "$out"' EXIT
go test -run='^$' -bench=. -benchtime="${BENCHTIME:-1x}" -benchmem ./agent/... ./controller/... | tee "$out"
echo
echo "== agent footprint"
ls -l bin/kvmnet-agent | awk '{printf "static agent size: %.1f MB\n", $5/1e6}'
file bin/kvmnet-agent | grep -q 'statically linked' && echo "linkage: static" || echo "linkage: NOT static"
