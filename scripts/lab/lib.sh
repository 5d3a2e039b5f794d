# shellcheck shell=bash
# Common settings and helpers for the kvmnet lab scripts (sourced, not executed).
#
# Everything the lab creates lives in network namespaces named $LAB and $LAB-inet, plus files under
# $LAB_STATE (per lab) and $LAB_CACHE (guest images shared by every lab). Nothing touches the machine's
# own interfaces, routes or firewall; processes are stopped by the PIDs recorded under $LAB_STATE.

set -o errexit -o nounset -o pipefail

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$LAB_DIR/../.." && pwd)
LAB=${KVMNET_LAB_NAME:-kvmnet-lab}
case "$LAB" in kvmnet-lab*) ;; *) echo "KVMNET_LAB_NAME must start with kvmnet-lab (got $LAB)" >&2; exit 2 ;; esac
LAB_INET="$LAB-inet"
LAB_STATE=${KVMNET_LAB_STATE:-$REPO/.lab/$LAB}
LAB_CACHE=${KVMNET_LAB_CACHE:-/var/cache/kvmnet-lab}
LAB_SOCK="$LAB_STATE/sock/libvirt-sock"
LAB_URI="qemu:///system?socket=$LAB_SOCK"
INET_IP=203.0.113.1
UPLINK_IP=203.0.113.2
INET_IP6=2001:db8:ffff::1

log() { printf '[lab %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[lab] ERROR: %s\n' "$*" >&2; exit 1; }

need_root() { [ "$(id -u)" -eq 0 ] || die "the lab needs root (network namespaces, libvirtd, QEMU); rerun as root"; }

need_bins() {
	local missing=() b
	for b in "$@"; do command -v "$b" >/dev/null 2>&1 || missing+=("$b"); done
	[ ${#missing[@]} -eq 0 ] || die "missing on PATH: ${missing[*]}; run 'make deps' (scripts/install-deps.sh) as root"
}

netns_exists() { ip netns list | awk '{print $1}' | grep -qx "$1"; }

# pid_alive PIDFILE: true when the file names a running process.
pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# stop_pid PIDFILE [NAME]: SIGTERM, wait up to 10 s, then SIGKILL; removes the file.
stop_pid() {
	local f=$1 name=${2:-$1} pid i
	[ -s "$f" ] || { rm -f "$f"; return 0; }
	pid=$(cat "$f")
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
		log "stopped $name (pid $pid)"
	fi
	rm -f "$f"
}

libvirtd_pid() { cat "$LAB_STATE/libvirtd.pid" 2>/dev/null; }

# in_lab ARGS: run ARGS as if on the lab host (libvirtd's mount + network namespace).
in_lab() {
	local pid
	pid=$(libvirtd_pid) || die "lab $LAB is not running (no $LAB_STATE/libvirtd.pid); run scripts/lab/up"
	kill -0 "$pid" 2>/dev/null || die "lab $LAB: libvirtd (pid $pid) is not running; run scripts/lab/down && scripts/lab/up"
	nsenter -t "$pid" -m -n -- "$@"
}

lvirsh() { in_lab virsh -q -c "$LAB_URI" "$@"; }

# wait_for SECONDS DESCRIPTION CMD...: poll CMD every second until it succeeds or the deadline passes.
wait_for() {
	local secs=$1 what=$2 start=$SECONDS
	shift 2
	until "$@" >/dev/null 2>&1; do
		if (( SECONDS - start >= secs )); then log "timed out after ${secs}s waiting for $what"; return 1; fi
		sleep 1
	done
}
