#!/usr/bin/env bash
# RSS of three p2pmon nodes over a long run, to show it does not grow (issue 7).
#
#   bench/rss-growth.sh [--duration SECONDS] [--every SECONDS] [--http] [--out DIR]
#
# Three nodes on 127.0.0.2-4 in a private network namespace, --interval 5s,
# --http off (or on, per node, with --http), stdout to /dev/null; VmRSS, VmHWM,
# threads and CPU of each are sampled every --every seconds (default 10) for
# --duration seconds (default 600). Prints the series, a summary table and the
# least-squares RSS slope after the first minute. Stops its nodes by PID and
# deletes the namespace on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DURATION=600
EVERY=10
HTTP=0
OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) DURATION=$2; shift 2 ;;
        --every) EVERY=$2; shift 2 ;;
        --http) HTTP=1; shift ;;
        --out) OUT=$2; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "error: unknown argument $1" >&2; exit 2 ;;
    esac
done
if [ "$(id -u)" != 0 ]; then echo "error: run as root (network namespaces)" >&2; exit 2; fi

. "$ROOT/bench/lib.sh"
ensure_p2pmon
OUT=${OUT:-$(mktemp -d /tmp/p2pmon-rss.XXXXXX)}
mkdir -p "$OUT"
bench_setup "$OUT"

for n in 2 3 4; do
    http=off
    [ "$HTTP" = 1 ] && http="127.0.0.$n:5080"
    start_node p2pmon "127.0.0.$n" "$P2PMON" --listen "127.0.0.$n" \
        --peers 127.0.0.2,127.0.0.3,127.0.0.4 --interval 5s --http "$http"
done
sleep 1
check_alive
echo "# bench/rss-growth.sh --duration $DURATION --every $EVERY$([ "$HTTP" = 1 ] && echo ' --http')"
echo "# $(date -u '+%Y-%m-%d %H:%M:%S UTC'); $(nproc) cores; p2pmon $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
python3 "$ROOT/bench/measure.py" series --pids "$OUT/pids.txt" --duration "$DURATION" \
    --every "$EVERY" --json "$OUT/series.json" | tee "$OUT/series.txt"
check_alive
echo "# raw data: $OUT"
