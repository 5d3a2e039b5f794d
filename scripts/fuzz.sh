#!/usr/bin/env bash
# Runs every Fuzz target of the module for a short time each (default 20s): the CI pass of the fuzzers.
# Longer local runs: scripts/fuzz.sh 10m
set -euo pipefail
cd "$(dirname "$0")/.."
t=${1:-20s}
n=0
while read -r pkg; do
  for f in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
    echo "fuzz: $pkg $f for $t"
    go test -run='^$' -fuzz="^${f}\$" -fuzztime="$t" "$pkg"
    n=$((n + 1))
  done
done < <(grep -rl --include='*_test.go' '^func Fuzz' agent controller scripts | xargs -r -n1 dirname | sort -u | sed 's|^|./|')
if [ "$n" -eq 0 ]; then echo "fuzz: no fuzz targets found" >&2; exit 1; fi
echo "fuzz: $n targets, $t each, no crash"
