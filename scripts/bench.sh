#!/usr/bin/env bash
# Runs the benchmarks that carry kvmnet's speed and memory targets (controller/perf) and prints them
# as a table. `make bench` runs it after `make build`: the fan-out and baseline use bin/kvmnetctl
# and virsh as subprocesses, the footprint runs bin/kvmnet-agent in a throwaway network namespace
# (root needed). Results for this machine are recorded in BENCHMARKS.md. RPC latency over the real
# virtio-serial channel of a booted guest is `make bench-lab` (scripts/lab/bench), not part of this.
#   BENCH_RPC_N   RPCs per latency benchmark (default 3000)
#   KVMNET_IDLE   idle window of the wakeup measurement (default 130s: shows the Go runtime's 60 s and 2 min work)
set -euo pipefail
cd "$(dirname "$0")/.."
export KVMNETCTL=${KVMNETCTL:-$PWD/bin/kvmnetctl} KVMNET_AGENT_BIN=${KVMNET_AGENT_BIN:-$PWD/bin/kvmnet-agent}
for b in "$KVMNETCTL" "$KVMNET_AGENT_BIN"; do
	[ -x "$b" ] || { echo "bench: $b missing: run 'make build'" >&2; exit 2; }
done
raw=$(mktemp)
trap 'rm -f "$raw"' EXIT
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)"
go test -run='^$' -timeout 30m -bench='StatusFanout|StatusHungGuest|VirshBaseline|AgentFootprint|ExporterScrape' -benchtime=1x ./controller/perf/ | tee "$raw"
go test -run='^$' -timeout 10m -bench='RPC$' -benchtime="${BENCH_RPC_N:-3000}x" ./controller/perf/ | tee -a "$raw"
# Diagnosis budget under a hostile guest (target < 50 MiB, < 1 s): the worst GetState reply under the
# 4 MiB message cap (200,000 interfaces, 100,000 profiles), bounded at collection, then diagnosed.
go test -run='^$' -timeout 10m -bench='WorstReply' -benchmem -benchtime=5x ./controller/collect/ | tee -a "$raw"
grep -q '^ok' "$raw" || { echo "bench: a benchmark failed" >&2; exit 1; }

# metric NAME LINE: the value before unit NAME on a benchmark line.
metric() { awk -v u="$1" '{for (i = 2; i <= NF; i++) if ($i == u) printf "%.6g\n", $(i-1)}' <<<"$2"; }
line() { grep -E "^$1(-[0-9]+)?[[:space:]]" "$raw" | head -1; }

echo
echo "== guests status fan-out (kvmnetctl process, test:/// libvirt, emulated virtio-serial agents) vs virsh baseline"
printf '%-8s %14s %12s %10s %18s %12s %14s\n' guests "kvmnet ms" "ms/guest" reachable "virsh ms" "ms/guest" "virsh failed"
for n in 1 10 50 100 200; do
	k=$(line "BenchmarkStatusFanout/guests=$n"); v=$(line "BenchmarkVirshBaseline/guests=$n")
	printf '%-8s %14s %12s %10s %18s %12s %14s\n' "$n" "$(metric ms/status "$k")" "$(metric ms/guest "$k")" "$(metric reachable "$k")" \
		"$(metric ms/status "$v")" "$(metric ms/guest "$v")" "$(metric failed-calls "$v")/$((2 * n))"
done
h=$(line BenchmarkStatusHungGuest)
echo "one hung guest among 50: $(metric ms/status "$h") ms with --timeout $(metric timeout-ms "$h") ms, $(metric reachable "$h") of 50 reachable"

e=$(line BenchmarkExporterScrape)
echo "kvmnetctl exporter, one /metrics scrape of $(metric guests "$e") guests (5 workers, checks on): $(metric ms/scrape "$e") ms" \
	"(guests status of 100: $(metric ms/status "$(line "BenchmarkStatusFanout/guests=100")") ms);" \
	"exporter RSS idle $(metric rss-idle-MiB "$e") MiB, after scrapes $(metric rss-after-MiB "$e") MiB"

echo
echo "== RPC latency (real agent server + service, real controller client)"
printf '%-34s %10s %10s\n' rpc p50-us p99-us
for r in GetState/unix GetState/serial-emulated RunChecks/unix RunChecks/serial-emulated; do
	l=$(line "BenchmarkRPC/$r")
	printf '%-34s %10s %10s\n' "$r" "$(metric p50-us "$l")" "$(metric p99-us "$l")"
done

echo
echo "== agent footprint (bin/kvmnet-agent in a throwaway netns, --listen unix:)"
f=$(line BenchmarkAgentFootprint)
for m in binary-MB rss-idle-MiB rss-watch-MiB rss-watch-anon-MiB rss-watch-file-MiB rss-watch-after-idle-MiB switches-idle switches-watch-idle wakeups-idle wakeups-watch-idle cpu-ticks-idle idle-window-s \
	rss-after-200-MiB rss-peak-100conc-MiB rss-after-burst-MiB rss-after-burst-anon-MiB rss-after-burst-file-MiB burst-2000-ms; do
	printf '%-28s %10s\n' "$m" "$(metric "$m" "$f")"
done
file "$KVMNET_AGENT_BIN" | grep -q 'statically linked' && echo "linkage: static" || echo "linkage: NOT static"
