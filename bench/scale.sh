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
# Packets (issue 15, "Scale": at 1,000 peers, one status a second each, at
# most 2.5 packets per status, CPU and peak memory at most issue 7's): every
# run of sections 1 and 4 also counts, over a steady window (section 1: from
# 5 s after the loadgen starts to 5 s before it stops; section 4: the CPU
# window), the packets sent on the namespace's `lo`
# (/sys/class/net/lo/statistics/tx_packets; each packet crosses lo once, so
# this is every packet of both ends) and, from one `ss -tin` of every
# established socket in the namespace, the TCP segments each socket sent
# (segs_out: statuses, ACKs, keepalive probes) and its data segments
# (data_segs_out/in). The node's sockets are those with local address
# 127.0.0.1; all others are the loadgen's. The loadgen sets no keepalive of
# its own (src/cmd/loadgen.rs: TCP_NODELAY only); beyond statuses it sends
# ACKs, including its answers to the node's keepalive probes.
# Denominator, "statuses carried": the data segments sent in the window on
# every socket (each status is one write on a TCP_NODELAY socket, one
# segment on lo; hellos go only at connect time), i.e.
#   section 1: the statuses the loadgen's N peers sent the node;
#   section 4: the statuses the node sent its N peers ("node out") plus
#              those the loadgen's N peers sent it ("node in").
# Printed: lo packets per status, all sockets' segments per status (the
# same count from ss, in the very same per-socket window as the statuses),
# and the node's own segments per status; with the node's peak RSS (VmHWM).
# Usage: bench/scale.sh [--only-1000] [SECONDS=60]   (run as root; needs
#        iproute2, iptables). --only-1000: sections 1 and 4 at N = 1,000 and
#        interval 1 s only (about 2 x SECONDS + 15 s), for before/after pairs.
#        P2PMON=path: the binary to measure (node and loadgen; default this
#        checkout's release build, rebuilt if stale). LOADGEN=path: another
#        binary for the loadgen, so that two builds' nodes face the very same
#        load (a slower loadgen spreads its round of statuses wider and wakes
#        the node more often: +/-15 % of the node's CPU at 1,000 peers).
set -euo pipefail
cd "$(dirname "$0")/.."
only_1000=0
if [ "${1:-}" = --only-1000 ]; then only_1000=1; shift; fi
secs=${1:-60}
if [ -n "${P2PMON:-}" ]; then
    bin=$(realpath "$P2PMON")
else
    cargo build --release --quiet
    bin=$PWD/target/release/p2pmon
fi
gen_bin=$(realpath "${LOADGEN:-$bin}")
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

# sample: one snapshot of the namespace's counters, on one line:
#   lo_tx_packets  then, for the node's sockets (local address 127.0.0.1) and
#   for all others (the loadgen's): sockets segs_out data_segs_out data_segs_in
# (`ss -tin`: ss prints data_segs_* only when non-zero). One ss call for both
# ends, read right after lo, so the packets and the statuses share a window.
sample() {
    local lo
    lo=$("${inns[@]}" cat /sys/class/net/lo/statistics/tx_packets)
    "${inns[@]}" ss -H -t -i -n state established | awk -v lo="$lo" '
        /^[^ \t]/ { side = ($3 ~ /^127\.0\.0\.1:/) ? 1 : 2; k[side]++; next }
        { for (i = 1; i <= NF; i++) { split($i, kv, ":")
              if (kv[1] == "segs_out") so[side] += kv[2]
              else if (kv[1] == "data_segs_out") dso[side] += kv[2]
              else if (kv[1] == "data_segs_in") dsi[side] += kv[2] } }
        END { printf "%d %d %d %d %d %d %d %d %d\n", lo, k[1], so[1], dso[1], dsi[1], k[2], so[2], dso[2], dsi[2] }'
}
# packets_row LABEL SECONDS "SAMPLE0" "SAMPLE1" HWM_KIB THREADS: one row of a packets table.
# statuses = data segments sent on every socket of the namespace (each status
# is one write on a TCP_NODELAY socket, one segment on lo): the statuses carried.
packets_row() {
    python3 - "$@" <<'PY'
import sys
label, secs, s0, s1, hwm, threads = sys.argv[1:]
d = [b - a for a, b in zip(map(int, s0.split()), map(int, s1.split()))]
lo, node_segs, node_out, node_in, other_segs, other_out = d[0], d[2], d[3], d[4], d[6], d[7]
statuses = node_out + other_out
per = lambda x: f"{x / statuses:.2f}" if statuses else "-"
sockets = f"{s0.split()[1]}/{s1.split()[1]}"
print(f"{label:<14} {secs + 's':>6} {lo:>8} {statuses:>8} {node_out:>8} {node_in:>8} {per(lo):>8} "
      f"{per(node_segs + other_segs):>8} {node_segs:>8} {per(node_segs):>9} {sockets:>9} {hwm + ' KiB':>10} {threads:>3}")
PY
}
packets_header() {
    printf "%-14s %6s %8s %8s %8s %8s %8s %8s %8s %9s %9s %10s %3s\n" run window "lo pkts" statuses \
        "node out" "node in" "lo/stat" "segs/st" "node seg" "node/stat" sockets "peak RSS" thr
}

echo "# p2pmon scale benchmark, $(date -u +%FT%TZ), $(nproc) cores, ${secs}s per run"
echo

if [ "$only_1000" = 1 ]; then ingest_peers=(1000); else ingest_peers=(100 1000); fi
window=$((secs - 10))   # section 1's packet window: 5 s in, 5 s before the loadgen stops
rows=()

echo "## 1. ingest: one node, N peers each sending every 1 s"
printf "%-6s %-10s %-10s %-12s %-12s %-8s\n" peers sent reported cpu%1core peakRSS threads
for n in "${ingest_peers[@]}"; do
    "${inns[@]}" "$bin" --listen 127.0.0.1 --interval 1s --http off >"$work/ingest.out" 2>"$work/ingest.err" &
    node=$!; pids+=("$node"); sleep 0.5
    c0=$(cpu_ns "$node"); t0=$(date +%s.%N)
    "${inns[@]}" "$gen_bin" loadgen send --target 127.0.0.1:5000 --peers "$n" --source 127.1.0.1 \
        --interval 1s --duration "${secs}s" >"$work/loadgen.txt" 2>/dev/null &
    gen=$!; pids+=("$gen")
    if [ "$window" -gt 0 ]; then
        sleep 5
        s0=$(sample)
        sleep "$window"
        s1=$(sample)
        rows+=("$(packets_row "ingest $n" "$window" "$s0" "$s1" "$(hwm_kib "$node")" "$(threads "$node")")")
    fi
    wait "$gen"
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
if [ "${#rows[@]}" -gt 0 ]; then
    echo "packets in a steady window (5 s after the loadgen starts to 5 s before it stops); statuses = those the loadgen sent"
    packets_header; printf '%s\n' "${rows[@]}"
fi
echo

if [ "$only_1000" = 0 ]; then
echo "## 2. fan-out: one node sends to 1,000 peers every 1 s, 100 black-holed"
"${inns[@]}" iptables -A INPUT -m iprange --dst-range 127.0.10.1-127.0.10.100 -j DROP
"${inns[@]}" iptables -A INPUT -m iprange --src-range 127.0.10.1-127.0.10.100 -j DROP
"${inns[@]}" "$gen_bin" loadgen sink --listen 127.0.10.1 --peers 1000 --interval 1s --duration "$((secs + 5))s" \
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
    "${inns[@]}" "$gen_bin" loadgen send --target 127.0.0.1:5000 --peers 8 --source 127.2.0.1 --flood --duration 10s >/dev/null 2>&1
    sleep 0.3
    received=$("${inns[@]}" curl -s 127.0.0.1:5080/metrics | awk '/^p2pmon_messages_received_total/ {print $2}')
    c1=$(cpu_ns "$node"); t1=$(date +%s.%N)
    echo "stdout to $( [ "$out" = /dev/null ] && echo /dev/null || echo 'a file'): $(python3 -c "print(f'{$received/($t1-$t0):,.0f} statuses/s, node cpu {($c1-$c0)/1e9/($t1-$t0)*100:.0f}% of one core')")"
    kill "$node"; wait "$node" 2>/dev/null || true
    rm -f "$work/flood.out"
done
echo

fi   # sections 2 and 3

if [ "$only_1000" = 1 ]; then mesh_intervals=(1s); mesh_peers=(1000); else mesh_intervals=(1s 5s); mesh_peers=(100 500 1000); fi
rows=()
echo "## 4. per-node cost of a full mesh: the node sends to N peers and hears from N"
printf "%-6s %-9s %-14s %-12s %-8s\n" peers interval cpu%1core RSS threads
for interval in "${mesh_intervals[@]}"; do
    for n in "${mesh_peers[@]}"; do
        "${inns[@]}" "$gen_bin" loadgen sink --listen 127.0.20.1 --peers "$n" --interval "$interval" --duration "$((secs + 15))s" >/dev/null 2>&1 &
        sink=$!; pids+=("$sink"); sleep 0.5
        "${inns[@]}" "$bin" --listen 127.0.0.1 --peers "$(peer_list 127.0.20.1 "$n")" --interval "$interval" --http off >/dev/null 2>&1 &
        node=$!; pids+=("$node"); sleep 0.5
        # The senders use the sinks' addresses: each simulated peer is one table
        # entry (source IP, port 5000), as in a real mesh. From other addresses
        # they would be N more peers: at N = 1,000, past MAX_PEERS (1,024), all
        # but 24 are refused and their connections closed after 10 s.
        "${inns[@]}" "$gen_bin" loadgen send --target 127.0.0.1:5000 --peers "$n" --source 127.0.20.1 --interval "$interval" --duration "$((secs + 10))s" >/dev/null 2>&1 &
        gen=$!; pids+=("$gen")
        sleep 5
        s0=$(sample)
        c0=$(cpu_ns "$node")
        sleep "$secs"
        c1=$(cpu_ns "$node")
        s1=$(sample)
        rows+=("$(packets_row "mesh $n $interval" "$secs" "$s0" "$s1" "$(hwm_kib "$node")" "$(threads "$node")")")
        printf "%-6s %-9s %-14s %-12s %-8s\n" "$n" "$interval" \
            "$(python3 -c "print(f'{($c1-$c0)/1e9/$secs*100:.2f}%')")" "$(rss_kib "$node") KiB" "$(threads "$node")"
        kill "$node" "$gen" "$sink" 2>/dev/null || true
        wait "$node" "$gen" "$sink" 2>/dev/null || true
    done
done
echo "packets in the CPU window; statuses = those the node sent to its N peers plus those the loadgen's N sent it"
packets_header; printf '%s\n' "${rows[@]}"
echo

[ "$only_1000" = 0 ] || exit 0

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
