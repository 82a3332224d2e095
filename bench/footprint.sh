#!/usr/bin/env bash
# Where a p2pmon node's memory goes (issue 15's footprint target).
#
#   bench/footprint.sh [--duration SECONDS] [--warmup SECONDS] [--http off] [--out DIR]
#
# Three nodes on 127.0.0.2-4 in a private network namespace (p2pmon-bench-$$,
# loopback only), --interval 5s, each with its HTTP endpoint on its own
# address (127.0.0.N:5080; the default is on) unless --http off, stdout to
# /dev/null. After --warmup seconds (default 20) it measures --duration
# seconds (default 60) with bench/measure.py: CPU s/min, VmRSS, USS
# (Private_Clean + Private_Dirty of /proc/PID/smaps_rollup) and threads per
# node (and lo bytes and packets per node: the namespace holds only them); then, from /proc/PID/smaps, RSS and private kB by mapping: the
# binary's text, rodata and data, libc, other libraries, [heap], thread
# stacks, malloc arenas, other anonymous memory. The three nodes run one
# binary, so its pages are shared among them (RSS) and mostly not private
# (USS). Stops its nodes by PID and deletes the namespace on exit. Runs as
# root (network namespaces). P2PMON=path measures another binary.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DURATION=60
WARMUP=20
HTTP=on
OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) DURATION=$2; shift 2 ;;
        --warmup) WARMUP=$2; shift 2 ;;
        --http) HTTP=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "error: unknown argument $1" >&2; exit 2 ;;
    esac
done
if [ "$(id -u)" != 0 ]; then echo "error: run as root (network namespaces)" >&2; exit 2; fi

. "$ROOT/bench/lib.sh"
ensure_p2pmon
OUT=${OUT:-$(mktemp -d /tmp/p2pmon-footprint.XXXXXX)}
mkdir -p "$OUT"
bench_setup "$OUT"

for n in 2 3 4; do
    http=off
    [ "$HTTP" = off ] || http="127.0.0.$n:5080"
    start_node p2pmon "127.0.0.$n" "$P2PMON" --listen "127.0.0.$n" \
        --peers 127.0.0.2,127.0.0.3,127.0.0.4 --interval 5s --http "$http"
done
sleep 1
check_alive
echo "# bench/footprint.sh --duration $DURATION --warmup $WARMUP --http $HTTP"
echo "# $(date -u '+%Y-%m-%d %H:%M:%S UTC'); p2pmon $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'); binary $(stat -c %s "$P2PMON") bytes; load average $(cut -d' ' -f1-3 /proc/loadavg)"
python3 "$ROOT/bench/measure.py" window --pids "$PIDFILE" --warmup "$WARMUP" \
    --duration "$DURATION" --json "$OUT/window.json"
echo
python3 "$ROOT/bench/measure.py" smaps --pids "$PIDFILE" --json "$OUT/smaps.json"
check_alive
echo "# raw data: $OUT"
