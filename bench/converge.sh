#!/usr/bin/env bash
# Membership at scale: N real p2pmon processes on 127.95.x.y, each started
# with only the first node (--join 127.95.0.1 --learn-peers). Reports how long
# until every node hears every other (its first status from each, printed with
# --changes-only), and the bytes membership adds to a status.
# Usage: bench/converge.sh [N=200] [INTERVAL=1s] [TIMEOUT_S=120]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-200}
interval=${2:-1s}
timeout_s=${3:-120}
cargo build --release --quiet
bin=$PWD/target/release/p2pmon
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
addr() { echo "127.95.$(( $1 / 250 )).$(( 1 + $1 % 250 ))"; }

start=$(date +%s.%N)
for ((i = 0; i < n; i++)); do
    "$bin" --listen "$(addr "$i")" --join "$(addr 0)" --learn-peers --interval "$interval" \
        --http off --changes-only >"$work/$i.out" 2>/dev/null &
    pids+=($!)
done
launched=$(date +%s.%N)
echo "# $n nodes launched in $(python3 -c "print(f'{$launched-$start:.1f}')") s, interval $interval"
while :; do
    done_nodes=0
    for ((i = 0; i < n; i++)); do
        heard=$(grep -c "^Received status from" "$work/$i.out" || true)
        [ "$heard" -ge $((n - 1)) ] && done_nodes=$((done_nodes + 1))
    done
    now=$(date +%s.%N)
    elapsed=$(python3 -c "print(f'{$now-$launched:.1f}')")
    echo "t=+${elapsed}s: $done_nodes of $n nodes hear all $((n - 1)) others"
    [ "$done_nodes" -eq "$n" ] && break
    if python3 -c "import sys; sys.exit(0 if $now-$launched > $timeout_s else 1)"; then
        echo "NOT CONVERGED within ${timeout_s}s"; exit 1
    fi
    sleep 1
done
echo "converged: every node hears all others ${elapsed}s after the last node started"
rss=0; for pid in "${pids[@]}"; do rss=$((rss + $(awk '/VmRSS/ {print $2}' /proc/"$pid"/status))); done
echo "mean RSS per node: $((rss / n)) KiB"
python3 - <<'PY'
import json
base = {"v":1,"type":"status","node":"node-042","port":5000,"boot":1764412800000,"seq":1234,
        "ts":1764412805000,"interval_ms":1000,"cpu":3.2,"memory":41.7}
entry = {"addr":"127.95.0.42:5000","name":"node-042","boot":1764412800000,"heard_ms":734}
plain = len(json.dumps(base, separators=(",", ":"))) + 1
full = dict(base, members=[entry] * 32)
print(f"status without members: {plain} bytes; with 32 members (the cap): "
      f"{len(json.dumps(full, separators=(',', ':'))) + 1} bytes; "
      f"{len(json.dumps(entry, separators=(',', ':'))) + 1} bytes per member entry")
PY
