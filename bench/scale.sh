#!/usr/bin/env bash
# Scale figures for issue 7, all in one private network namespace (the whole
# 127.0.0.0/8 inside it is ours), every run bounded in time:
#   1. ingest: one node hears N simulated peers (kept-open, distinct source
#      addresses, one status per second each): share reported, CPU, peak RSS;
#   2. fan-out: one node sends to 1,000 listening peers every second, 100 of
#      them black-holed with iptables: does every live peer get every update
#      on time?
#   3. maximum ingest: 8 connections flooding one node (stdout to /dev/null);
#   4. per-node cost of a full mesh at 100, 500 and 1,000 peers (the node both
#      sends to and hears from N peers, interval 1 s and 5 s).
# Usage: bench/scale.sh [SECONDS=60]     (run as root; needs iproute2, iptables)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
cargo build --release --quiet
bin=$PWD/target/release/p2pmon
ns=p2pmon-scale-$$
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$ns"
ip netns exec "$ns" ip link set lo up
# An array, not a function: a backgrounded function would make $! a subshell.
inns=(ip netns exec "$ns")
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true   # the node raises its own; loadgen needs many too

cpu_ns() { awk '{s += $1} END {print s}' /proc/"$1"/task/*/schedstat; }
hwm_kib() { awk '/VmHWM/ {print $2}' /proc/"$1"/status; }
rss_kib() { awk '/VmRSS/ {print $2}' /proc/"$1"/status; }
threads() { awk '/Threads/ {print $2}' /proc/"$1"/status; }
peer_list() { # peer_list FIRST N -> FIRST, FIRST+1, ... (the addresses loadgen sink uses)
    python3 -c "import ipaddress,sys; f=ipaddress.ip_address(sys.argv[1]); print(','.join(str(f+i) for i in range(int(sys.argv[2]))))" "$1" "$2"
}

echo "# p2pmon scale benchmark, $(date -u +%FT%TZ), $(nproc) cores, ${secs}s per run"
echo

echo "## 1. ingest: one node, N peers each sending every 1 s"
printf "%-6s %-10s %-10s %-12s %-12s %-8s\n" peers sent reported cpu%1core peakRSS threads
for n in 100 1000; do
    "${inns[@]}" "$bin" --listen 127.0.0.1 --interval 1s --http off >"$work/ingest.out" 2>"$work/ingest.err" &
    node=$!; pids+=("$node"); sleep 0.5
    c0=$(cpu_ns "$node"); t0=$(date +%s.%N)
    "${inns[@]}" "$bin" loadgen send --target 127.0.0.1:5000 --peers "$n" --source 127.1.0.1 \
        --interval 1s --duration "${secs}s" >"$work/loadgen.txt" 2>/dev/null
    sleep 1
    c1=$(cpu_ns "$node"); t1=$(date +%s.%N)
    sent=$(awk '{print $2}' "$work/loadgen.txt")
    reported=$(grep -c "^Received status" "$work/ingest.out" || true)
    printf "%-6s %-10s %-10s %-12s %-12s %-8s\n" "$n" "$sent" \
        "$(python3 -c "print(f'{$reported/$sent*100:.2f}%')")" \
        "$(python3 -c "print(f'{($c1-$c0)/1e9/($t1-$t0)*100:.2f}%')")" \
        "$(( $(hwm_kib "$node") / 1024 )).$(( $(hwm_kib "$node") % 1024 * 10 / 1024 )) MiB" "$(threads "$node")"
    kill "$node"; wait "$node" 2>/dev/null || true
done
echo

echo "## 2. fan-out: one node sends to 1,000 peers every 1 s, 100 black-holed"
"${inns[@]}" iptables -A INPUT -m iprange --dst-range 127.0.10.1-127.0.10.100 -j DROP
"${inns[@]}" iptables -A INPUT -m iprange --src-range 127.0.10.1-127.0.10.100 -j DROP
"${inns[@]}" "$bin" loadgen sink --listen 127.0.10.1 --peers 1000 --interval 1s --duration "$((secs + 5))s" \
    --warmup 8s >"$work/sink.txt" 2>/dev/null &
sink=$!; pids+=("$sink"); sleep 1
peers=$(peer_list 127.0.10.1 1000)
"${inns[@]}" "$bin" --listen 127.0.0.1 --peers "$peers" --interval 1s --http off >/dev/null 2>"$work/fanout.err" &
node=$!; pids+=("$node")
c0=$(cpu_ns "$node")
wait "$sink" || true
c1=$(cpu_ns "$node")
cat "$work/sink.txt"
echo "node: cpu $(python3 -c "print(f'{($c1-$c0)/1e9/($secs+4)*100:.2f}')")% of one core, peak RSS $(hwm_kib "$node") KiB, $(threads "$node") threads"
echo "(the 100 black-holed peers are the ones not heard; every heard peer must show no gap above 1.5 s)"
kill "$node"; wait "$node" 2>/dev/null || true
"${inns[@]}" iptables -F INPUT
echo

echo "## 3. maximum ingest: 8 connections flooding one node, 10 s"
for out in /dev/null "$work/flood.out"; do
    "${inns[@]}" "$bin" --listen 127.0.0.1 --interval 1s --http 127.0.0.1:5080 >"$out" 2>/dev/null &
    node=$!; pids+=("$node"); sleep 0.5
    c0=$(cpu_ns "$node"); t0=$(date +%s.%N)
    "${inns[@]}" "$bin" loadgen send --target 127.0.0.1:5000 --peers 8 --source 127.2.0.1 --flood --duration 10s >/dev/null 2>&1
    sleep 0.3
    received=$("${inns[@]}" curl -s 127.0.0.1:5080/metrics | awk '/^p2pmon_messages_received_total/ {print $2}')
    c1=$(cpu_ns "$node"); t1=$(date +%s.%N)
    echo "stdout to $( [ "$out" = /dev/null ] && echo /dev/null || echo 'a file'): $(python3 -c "print(f'{$received/($t1-$t0):,.0f} statuses/s, node cpu {($c1-$c0)/1e9/($t1-$t0)*100:.0f}% of one core')")"
    kill "$node"; wait "$node" 2>/dev/null || true
    rm -f "$work/flood.out"
done
echo

echo "## 4. per-node cost of a full mesh: the node sends to N peers and hears from N"
printf "%-6s %-9s %-14s %-12s %-8s\n" peers interval cpu%1core RSS threads
for interval in 1s 5s; do
    for n in 100 500 1000; do
        "${inns[@]}" "$bin" loadgen sink --listen 127.0.20.1 --peers "$n" --interval "$interval" --duration "$((secs + 10))s" >/dev/null 2>&1 &
        sink=$!; pids+=("$sink"); sleep 0.5
        "${inns[@]}" "$bin" --listen 127.0.0.1 --peers "$(peer_list 127.0.20.1 "$n")" --interval "$interval" --http off >/dev/null 2>&1 &
        node=$!; pids+=("$node"); sleep 0.5
        "${inns[@]}" "$bin" loadgen send --target 127.0.0.1:5000 --peers "$n" --source 127.3.0.1 --interval "$interval" --duration "$((secs + 5))s" >/dev/null 2>&1 &
        gen=$!; pids+=("$gen")
        sleep 5
        c0=$(cpu_ns "$node")
        sleep "$secs"
        c1=$(cpu_ns "$node")
        printf "%-6s %-9s %-14s %-12s %-8s\n" "$n" "$interval" \
            "$(python3 -c "print(f'{($c1-$c0)/1e9/$secs*100:.2f}%')")" "$(rss_kib "$node") KiB" "$(threads "$node")"
        kill "$node" "$gen" "$sink" 2>/dev/null || true
        wait "$node" "$gen" "$sink" 2>/dev/null || true
    done
done
echo

echo "## 5. bytes on the wire per status"
python3 - "$bin" <<'PY'
import json
status = {"v":1,"type":"status","node":"web-01","port":5000,"boot":1764412800000,"seq":123456,
          "ts":1764412805000,"interval_ms":5000,"cpu":3.2,"memory":41.7}
plain = len(json.dumps(status, separators=(",", ":"))) + 1
# Sealed: nonce 24 + tag 16 over the plaintext plus "to", base64, in {"v":1,"sealed":"..."}\n
to = len(',"to":"192.168.100.101:5000"')
inner = plain - 1 + to
sealed = len('{"v":1,"sealed":""}') + 4 * ((24 + inner + 16 + 2) // 3) + 1
for name, size in (("plaintext", plain), ("sealed", sealed)):
    per_min = 12 * size
    print(f"{name:9} {size} bytes per status; {per_min} bytes per peer per minute at 5 s "
          f"(+{12 * 52} bytes of TCP/IP headers, one segment per status)")
PY
