#!/usr/bin/env bash
# Runs every Fuzz target of the module for a short time each (default 20s): the CI pass of the fuzzers.
# Longer local runs: scripts/fuzz.sh 10m
#
# Each package's fuzz-instrumented test binary is built once (`go test -c -fuzz=.`: the
# instrumentation does not depend on the -fuzz pattern) and every target of the package runs from
# it, in the package directory, with the arguments `go test -fuzz` would pass (-test.fuzzcachedir
# under GOCACHE, so the cache of interesting inputs is the one `go test -fuzz` uses). Before, each
# target cost one `go test -list` build and one `go test -fuzz` build and link.
#
# A target that fails and writes a failing input (testdata/fuzz/FuzzX/<new file>) fails the run at
# once. A target that fails WITHOUT writing one is Go 1.26's fuzz-coordinator timeout on a loaded
# machine (golang/go#75804: "context deadline exceeded", nothing found): it is tried up to three
# times in all and must pass one of them.
set -euo pipefail
cd "$(dirname "$0")/.."
t=${1:-20s}
mod=$(go list -m)
cache="$(go env GOCACHE)/fuzz"
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
n=0
build=0
start=$SECONDS
while read -r pkg; do
  exe="$bin/$(echo "${pkg#./}" | tr / _).test"
  b0=$SECONDS
  echo "fuzz: build $pkg"
  go test -c -fuzz=. -o "$exe" "$pkg"
  build=$((build + SECONDS - b0))
  for f in $(cd "$pkg" && "$exe" -test.list '^Fuzz' | grep '^Fuzz' || true); do
    corpus="$pkg/testdata/fuzz/$f"
    before=$(ls "$corpus" 2>/dev/null | sort || true)
    run() {
      (cd "$pkg" && "$exe" -test.paniconexit0 -test.timeout=10m0s -test.run='^$' -test.fuzz="^${f}\$" \
        -test.fuzztime="$t" -test.fuzzcachedir="$cache/$mod/${pkg#./}")
    }
    echo "fuzz: $pkg $f for $t"
    if ! run; then
      after=$(ls "$corpus" 2>/dev/null | sort || true)
      if [ "$before" != "$after" ]; then
        echo "fuzz: $f found a failing input: $(comm -13 <(echo "$before") <(echo "$after") | sed "s|^|$corpus/|")" >&2
        exit 1
      fi
      # Slow targets (FuzzHandlers: ~40 execs/s under load) meet the coordinator race most often; a
      # real crasher always writes its input, so two more tries cannot hide one.
      for try in 2 3; do
        echo "fuzz: $f failed without a failing input (Go fuzz coordinator timeout); try $try of 3"
        if run; then break; fi
        after=$(ls "$corpus" 2>/dev/null | sort || true)
        if [ "$before" != "$after" ] || [ "$try" = 3 ]; then
          echo "fuzz: $f failed $try times${after:+; new inputs: $(comm -13 <(echo "$before") <(echo "$after") | tr '\n' ' ')}" >&2
          exit 1
        fi
      done
    fi
    n=$((n + 1))
  done
done < <(grep -rl --include='*_test.go' '^func Fuzz' agent controller proto scripts | xargs -r -n1 dirname | sort -u | sed 's|^|./|')
if [ "$n" -eq 0 ]; then echo "fuzz: no fuzz targets found" >&2; exit 1; fi
echo "fuzz: $n targets, $t each, no crash ($((SECONDS - start))s wall, ${build}s of it building)"
