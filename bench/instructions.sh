#!/usr/bin/env bash
# User-space instructions a node spends per status received, per binary:
# deterministic (callgrind counts instructions, not time), so two builds
# compare on a shared, noisy machine where a CPU figure moves by several
# percent between runs (issue 15, "Scale": CPU at 1,000 peers at most
# before's).
#
#   bench/instructions.sh [--peers N] [--duration SECONDS] [BINARY...]
#
# For each binary (default: this checkout's release build), one node
# (--listen 127.0.0.1 --interval 1s --http off, stdout kept to count its
# status lines) runs under `valgrind --tool=callgrind` in a private network
# namespace, and `p2pmon loadgen send` (that same binary) sends N peers'
# statuses (default 300, kept-open connections from 127.1.0.1 on, one status
# a second each) for SECONDS (default 20). Printed per binary: statuses the
# node printed, instructions in all (start-up and the sender's ticks
# included, the same for every binary), and instructions per status. A
# binary with symbols (`cargo build --profile profiling`) also gets its ten
# costliest functions. Bounded: about SECONDS + 10 s per binary; the node and
# the loadgen are stopped by PID and the namespace deleted on exit. Runs as
# root (network namespaces); needs valgrind (installed if missing).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

peers=300
secs=20
bins=()
while [ $# -gt 0 ]; do
    case $1 in
        --peers) peers=$2; shift 2 ;;
        --duration) secs=$2; shift 2 ;;
        -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
        -*) echo "unknown option $1" >&2; exit 2 ;;
        *) bins+=("$(realpath "$1")"); shift ;;
    esac
done
if [ ${#bins[@]} -eq 0 ]; then
    ensure_p2pmon
    bins=("$P2PMON")
fi
ensure_deb valgrind valgrind
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

OUT=$(mktemp -d /tmp/p2pmon-instructions.XXXXXX)
NS=p2pmon-instr-$$
NODE_NS=$NS
bench_setup "$OUT"

echo "# instructions per status: $peers loadgen peers at 1 s for ${secs}s into one node under callgrind, $(date -u +%FT%TZ)"
printf "%-40s %10s %14s %12s\n" binary statuses instructions per_status
for i in "${!bins[@]}"; do
    bin=${bins[$i]}
    cg=$OUT/node-$i.callgrind
    start_node_to "$OUT/node-$i.out" p2pmon "$i" \
        valgrind --tool=callgrind --callgrind-out-file="$cg" \
        "$bin" --listen 127.0.0.1 --interval 1s --http off
    node=$(awk -v n="$i" '$2 == n {print $3}' "$PIDFILE")
    sleep 3   # valgrind's start-up
    ip netns exec "$NS" "$bin" loadgen send --target 127.0.0.1:5000 --peers "$peers" \
        --source 127.1.0.1 --interval 1s --duration "${secs}s" >/dev/null 2>&1
    sleep 1
    kill -INT "$node"
    for _ in $(seq 100); do kill -0 "$node" 2>/dev/null || break; sleep 0.1; done
    statuses=$(grep -c '^Received status' "$OUT/node-$i.out" || true)
    callgrind_annotate "$cg" > "$cg.txt" 2>/dev/null || true
    total=$(awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}' "$cg.txt")
    if [ -z "$total" ] || [ "$statuses" -eq 0 ]; then
        echo "no figures for $bin (statuses $statuses); its stderr:" >&2
        sed 's/^/    /' "$OUT/p2pmon-$i.err" >&2
        exit 1
    fi
    printf "%-40s %10s %14s %12s\n" "$bin" "$statuses" "$total" "$((total / statuses))"
    if grep -q 'p2pmon::' "$cg.txt"; then
        awk '/file:function/ {p=1; next} p && NF' "$cg.txt" \
            | sed -n '2,11p' | cut -c1-150 | sed 's/^/    /'
    fi
done
