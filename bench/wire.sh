#!/usr/bin/env bash
# Packets and bytes on the wire per status in a three-node cluster (issue 15,
# "Quiet wire").
#
#   bench/wire.sh [--duration SECONDS] [--warmup SECONDS] [--interval DURATION]
#
# Inside a private network namespace (p2pmon-bench-$$, loopback only) it runs
# three p2pmon nodes on 127.0.0.2-4 (default --interval 5s, --http off),
# waits --warmup seconds (default 12) for the mesh, then counts over
# --duration seconds (default 60): packets and bytes sent on the namespace's
# `lo` (each packet crosses it once), TCP segments (/proc/net/snmp), and
# statuses (the nodes' "Received status" lines: one per status sent). It
# prints the figures and packets per status (target: at most 2.5). Every
# process it starts is stopped by PID on exit and the namespace deleted.
# Runs as root. P2PMON=path picks the binary (default: this checkout's
# release build, rebuilt if stale).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DURATION=60
WARMUP=12
INTERVAL=5s
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) DURATION=$2; shift 2 ;;
        --warmup) WARMUP=$2; shift 2 ;;
        --interval) INTERVAL=$2; shift 2 ;;
        -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "error: unknown argument $1" >&2; exit 2 ;;
    esac
done
if [ "$(id -u)" != 0 ]; then echo "error: run as root (network namespaces)" >&2; exit 2; fi
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
ensure_p2pmon
OUT=$(mktemp -d)
bench_setup "$OUT"

IPS=(127.0.0.2 127.0.0.3 127.0.0.4)
PEERS=$(IFS=,; echo "${IPS[*]}")
for ip in "${IPS[@]}"; do
    ip netns exec "$NS" "$P2PMON" --listen "$ip" --peers "$PEERS" \
        --interval "$INTERVAL" --http off >"$OUT/$ip.out" 2>"$OUT/$ip.err" &
    echo "p2pmon $ip $!" >> "$PIDFILE"
done

counters() {
    # lo tx packets, lo tx bytes, TCP OutSegs, statuses received so far
    local packets bytes segs statuses
    packets=$(ip netns exec "$NS" cat /sys/class/net/lo/statistics/tx_packets)
    bytes=$(ip netns exec "$NS" cat /sys/class/net/lo/statistics/tx_bytes)
    segs=$(ip netns exec "$NS" awk '/^Tcp:/ { if (h) print $12; h = 1 }' /proc/net/snmp)
    statuses=$(cat "$OUT"/*.out | grep -c '^Received status from' || true)
    echo "$packets $bytes $segs $statuses"
}

sleep "$WARMUP"
check_alive
read -r p0 b0 s0 n0 < <(counters)
sleep "$DURATION"
read -r p1 b1 s1 n1 < <(counters)
check_alive

packets=$((p1 - p0)) bytes=$((b1 - b0)) segs=$((s1 - s0)) statuses=$((n1 - n0))
python3 - "$DURATION" "$INTERVAL" "$packets" "$bytes" "$segs" "$statuses" <<'PY'
import sys
duration, interval = float(sys.argv[1]), sys.argv[2]
packets, nbytes, segs, statuses = map(int, sys.argv[3:])
per_min = 60.0 / duration
print(f"3 nodes, --interval {interval}, {duration:.0f} s on lo:")
print(f"  packets {packets} ({packets * per_min:.0f}/min, {packets / duration:.1f}/s)")
print(f"  bytes   {nbytes} ({nbytes * per_min / 1024:.1f} KiB/min)")
print(f"  TCP segments out {segs}")
print(f"  statuses {statuses} ({statuses / duration:.2f}/s)")
if statuses:
    ratio = packets / statuses
    print(f"  packets per status {ratio:.2f} (target <= 2.5: {'ok' if ratio <= 2.5 else 'FAIL'})")
    print(f"  bytes per status {nbytes / statuses:.0f}")
PY
