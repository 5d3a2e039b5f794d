#!/usr/bin/env bash
# Runs every Fuzz target of the module for a short time each (default 20s): the CI pass of the fuzzers.
# Longer local runs: scripts/fuzz.sh 10m
#
# A target that fails and writes a failing input (testdata/fuzz/FuzzX/<new file>) fails the run at
# once. A target that fails WITHOUT writing one is Go 1.26's fuzz-coordinator timeout on a loaded
# machine (golang/go#75804: "context deadline exceeded", nothing found): it is run once more and must
# pass then.
set -euo pipefail
cd "$(dirname "$0")/.."
t=${1:-20s}
n=0
while read -r pkg; do
  for f in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
    corpus="$pkg/testdata/fuzz/$f"
    before=$(ls "$corpus" 2>/dev/null | sort || true)
    echo "fuzz: $pkg $f for $t"
    if ! go test -run='^$' -fuzz="^${f}\$" -fuzztime="$t" "$pkg"; then
      after=$(ls "$corpus" 2>/dev/null | sort || true)
      if [ "$before" != "$after" ]; then
        echo "fuzz: $f found a failing input: $(comm -13 <(echo "$before") <(echo "$after") | sed "s|^|$corpus/|")" >&2
        exit 1
      fi
      echo "fuzz: $f failed without a failing input (Go fuzz coordinator timeout); running it once more"
      go test -run='^$' -fuzz="^${f}\$" -fuzztime="$t" "$pkg"
    fi
    n=$((n + 1))
  done
done < <(grep -rl --include='*_test.go' '^func Fuzz' agent controller scripts | xargs -r -n1 dirname | sort -u | sed 's|^|./|')
if [ "$n" -eq 0 ]; then echo "fuzz: no fuzz targets found" >&2; exit 1; fi
echo "fuzz: $n targets, $t each, no crash"
