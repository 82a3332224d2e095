#!/usr/bin/env bash
# The web dashboard's cost: release binary size, and the RSS of a node whose
# page is open in headless Chromium (polling /status and /history every 2 s),
# against the same node with no page open.
# Rerun: scripts/bench-dashboard.sh [POLL_S=120]   (needs chromium; loopback 127.90.1.x only)
set -euo pipefail
cd "$(dirname "$0")/.."
poll_s=${1:-120}
cargo build --release --quiet
bin=target/release/p2pmon
echo "binary: $(stat -c %s $bin) bytes"

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

peers=127.90.1.1,127.90.1.2,127.90.1.3
for i in 1 2 3; do
    $bin --listen 127.90.1.$i --peers $peers --interval 1s --http 127.90.1.$i:5080 \
        >"$work/node$i.out" 2>"$work/node$i.err" &
    pids+=($!)
done
node=${pids[0]}
rss() { awk -v what="$1" '$1 == what":" { print $2 " kB" }' "/proc/$node/status"; }

# Bounded wait for the cluster to form (statuses from both peers).
deadline=$((SECONDS + 15))
until [ "$(grep -c 'Received status' "$work/node1.out" || true)" -ge 2 ]; do
    [ $SECONDS -lt $deadline ] || { echo "cluster did not form" >&2; exit 1; }
    sleep 0.1
done
sleep 20   # a settled node, no page
echo "no page, after 20 s: VmRSS $(rss VmRSS), VmHWM $(rss VmHWM)"

chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$work/profile" --remote-debugging-address=127.0.0.1 \
    --remote-debugging-port=0 http://127.90.1.1:5080/ >/dev/null 2>&1 &
pids+=($!)
sleep "$poll_s"
requests=$(ss -Htan state time-wait '( sport = :5080 )' src 127.90.1.1 | wc -l)
echo "requests served in the last minute (TIME_WAIT sockets): $requests"
echo "page open ${poll_s} s: VmRSS $(rss VmRSS), VmHWM $(rss VmHWM), threads $(ls /proc/$node/task | wc -l)"
history=$(curl -s http://127.90.1.1:5080/history | wc -c)
since=$(curl -s "http://127.90.1.1:5080/history?since=$(( $(date +%s) - 5 ))" | wc -c)
echo "/history: ${history} bytes in full (3 rings, ${poll_s}+ s of points), ${since} bytes with ?since= (one poll)"
