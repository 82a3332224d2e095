#!/usr/bin/env bash
# Side-by-side cost of three-node monitoring clusters, in one run (issues 7
# and 15).
#
#   bench/compare.sh [--duration SECONDS] [--warmup SECONDS] [--no-extra] [--out DIR]
#
# Each system gets its own private network namespace (p2pmon-bench-$$-SYSTEM,
# loopback only), and all of them run at the same time, three nodes each:
#   p2pmon        127.0.0.2-4    --interval 5s --http off
#   p2pmon-http   127.0.0.32-34  --interval 5s --http 127.0.0.3N:5080 (HTTP thread on)
#   python        127.0.0.12-14  tests/fixtures/seed_p2p.py (the Python original)
#   gmond         127.0.0.22-24  Ganglia 3.7.2, unicast, default metric collection
#   collectd      127.0.0.42-44  cpu, memory, load + network plugin, Interval 5   (extra)
#   serf          127.0.0.52-54  serf agent, LAN profile                          (extra)
# waits --warmup seconds (default 20), then measures each process over
# --duration seconds (default 90) with bench/measure.py: CPU from
# /proc/PID/task/*/schedstat, RSS/HWM/threads from /proc/PID/status, USS from
# /proc/PID/smaps_rollup; and per system the packets and bytes sent on its
# namespace's `lo` (/proc/PID/net/dev of one of its nodes: every packet of the
# cluster crosses its own lo exactly once, and nothing else is in that
# namespace), and for p2pmon and Python the statuses (one "Received status"
# line per status on a node's stdout, kept in OUT/SYSTEM-NODE.out; Python runs
# with -u so its lines are counted as they come). It prints a table with
# ratios to gmond and to the Python original, wire figures per node, and
# issue 15's checks: RSS <= 0.75 x gmond (HTTP on, the default), CPU <= 0.5 x
# Python, bytes/min <= Python's, packets per status <= 2.5; and threads <= 4.
# Every process it starts is stopped by PID on exit, and the namespaces are
# deleted. Runs as root (network namespaces). P2PMON=path measures another
# binary (default: this checkout's release build, rebuilt if stale). Needs:
# iproute2, python3 with psutil, Debian's ganglia-monitor (and collectd-core,
# serf for the extras); missing ones are installed (apt with a policy-rc.d
# that keeps their system services from starting; pip for psutil).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DURATION=90
WARMUP=20
EXTRA=1
OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) DURATION=$2; shift 2 ;;
        --warmup) WARMUP=$2; shift 2 ;;
        --no-extra) EXTRA=0; shift ;;
        --out) OUT=$2; shift 2 ;;
        -h|--help) sed -n '2,32p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "error: unknown argument $1" >&2; exit 2 ;;
    esac
done
if [ "$(id -u)" != 0 ]; then echo "error: run as root (network namespaces)" >&2; exit 2; fi

. "$ROOT/bench/lib.sh"

ensure_deb gmond ganglia-monitor
if [ "$EXTRA" = 1 ]; then
    ensure_deb collectd collectd-core
    ensure_deb serf serf
fi
ensure_psutil
ensure_p2pmon

OUT=${OUT:-$(mktemp -d /tmp/p2pmon-compare.XXXXXX)}
mkdir -p "$OUT"
bench_setup "$OUT"

# --- p2pmon, --http off and on --------------------------------------------------
bench_netns p2pmon
for n in 2 3 4; do
    start_node_logged p2pmon "127.0.0.$n" "$P2PMON" --listen "127.0.0.$n" \
        --peers 127.0.0.2,127.0.0.3,127.0.0.4 --interval 5s --http off
done
bench_netns p2pmon-http
for n in 32 33 34; do
    start_node_logged p2pmon-http "127.0.0.$n" "$P2PMON" --listen "127.0.0.$n" \
        --peers 127.0.0.32,127.0.0.33,127.0.0.34 --interval 5s --http "127.0.0.$n:5080"
done

# --- the Python original: each node lists the two others, as PEER_NODES did ---
bench_netns python
for n in 12 13 14; do
    others=$(printf '127.0.0.%s,' 12 13 14 | sed "s/127.0.0.$n,//; s/,\$//")
    start_node_logged python "127.0.0.$n" "$PYTHON" -u "$ROOT/tests/fixtures/seed_p2p.py" \
        --bind "127.0.0.$n" --peers "$others"
done

# --- Ganglia gmond, unicast --------------------------------------------------------
bench_netns gmond
for n in 22 23 24; do
    others=$(for m in 22 23 24; do [ "$m" = "$n" ] || printf '127.0.0.%s ' "$m"; done)
    # shellcheck disable=SC2086
    python3 "$ROOT/bench/gmond_conf.py" "127.0.0.$n" $others > "$OUT/gmond-$n.conf"
    start_node gmond "127.0.0.$n" gmond -c "$OUT/gmond-$n.conf"
done

if [ "$EXTRA" = 1 ]; then
    # --- collectd: network plugin, each node sends to the two others ------------
    bench_netns collectd
    for n in 42 43 44; do
        mkdir -p "$OUT/collectd-$n"
        {
            echo "Hostname \"node$n\""
            echo "FQDNLookup false"
            echo "BaseDir \"$OUT/collectd-$n\""
            echo "PIDFile \"$OUT/collectd-$n/collectd.pid\""
            echo "PluginDir \"/usr/lib/collectd\""
            echo "TypesDB \"/usr/share/collectd/types.db\""
            echo "Interval 5"
            echo "LoadPlugin cpu"
            echo "LoadPlugin memory"
            echo "LoadPlugin load"
            echo "LoadPlugin network"
            echo "<Plugin network>"
            for m in 42 43 44; do
                [ "$m" = "$n" ] || echo "  Server \"127.0.0.$m\" \"25826\""
            done
            echo "  Listen \"127.0.0.$n\" \"25826\""
            echo "</Plugin>"
        } > "$OUT/collectd-$n.conf"
        start_node collectd "127.0.0.$n" collectd -f -C "$OUT/collectd-$n.conf"
    done
    # --- serf: three agents, the second and third join the first -----------------
    bench_netns serf
    for n in 52 53 54; do
        join=()
        [ "$n" = 52 ] || join=(-retry-join=127.0.0.52:7946 -retry-interval=1s)
        start_node serf "127.0.0.$n" serf agent -node="node$n" -bind="127.0.0.$n:7946" \
            -rpc-addr="127.0.0.$n:7373" -log-level=warn "${join[@]}"
        [ "$n" = 52 ] && sleep 0.5
    done
fi

# Did each cluster form? (stdout of the nodes goes to /dev/null, so ask them)
cluster_checks() {
    local n
    echo "# cluster checks at the end of the window:"
    for n in 22 23 24; do
        echo "#   gmond 127.0.0.$n reports $(ip netns exec "$NS-gmond" python3 -c '
import socket, sys
s = socket.create_connection((sys.argv[1], 8649), 5)
xml = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    xml += b
print(xml.count(b"<HOST NAME="))' "127.0.0.$n") hosts"
        if grep -q "Cannot load" "$OUT/gmond-127.0.0.$n.err"; then
            echo "#   WARNING gmond 127.0.0.$n: $(grep -m1 'Cannot load' "$OUT/gmond-127.0.0.$n.err")"
        fi
    done
    for n in 32 33 34; do
        echo "#   p2pmon-http 127.0.0.$n: $(ip netns exec "$NS-p2pmon-http" python3 -c '
import json, sys, urllib.request
st = json.load(urllib.request.urlopen(f"http://{sys.argv[1]}:5080/status", timeout=5))
peers = st.get("peers", [])
print(sum(1 for p in peers if p.get("state") == "online"), "of", len(peers), "peers online")' "127.0.0.$n" 2>&1 | tail -1)"
    done
    if [ "$EXTRA" = 1 ]; then
        echo "#   serf 127.0.0.52 members alive: $(ip netns exec "$NS-serf" serf members -rpc-addr=127.0.0.52:7373 2>&1 | grep -c alive)"
    fi
}

sleep 2
check_alive
{
    echo "# bench/compare.sh --duration $DURATION --warmup $WARMUP$([ "$EXTRA" = 1 ] || echo ' --no-extra')"
    echo "# $(date -u '+%Y-%m-%d %H:%M:%S UTC'); $(nproc) cores, $(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo); kernel $(uname -r)"
    echo "# p2pmon $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'); $(gmond --version | head -1); Python $("$PYTHON" -c 'import sys, psutil; print(sys.version.split()[0], "psutil", psutil.__version__)')$([ "$EXTRA" = 1 ] && echo "; collectd $(collectd -h | awk '/^collectd /{sub(",", "", $2); print $2; exit}'); serf $(serf version | head -1)")"
    echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "# P2PMON=$P2PMON ($(stat -c %s "$P2PMON") bytes, $("$P2PMON" --version)); one namespace per system, stdout of p2pmon and Python in $OUT/*.out"
} | tee "$OUT/table.md"
python3 "$ROOT/bench/measure.py" window --pids "$OUT/pids.txt" --warmup "$WARMUP" \
    --duration "$DURATION" --json "$OUT/result.json" | tee -a "$OUT/table.md"
check_alive
cluster_checks | tee -a "$OUT/table.md"
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/table.md"
echo "# raw data, configs and stderr of every node: $OUT"
