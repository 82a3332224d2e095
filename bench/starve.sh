#!/usr/bin/env bash
# False verdicts under CPU starvation (issue 15, "Detection kept": no false
# offline under several busy loops at a higher priority than the nodes for a
# minute).
#
#   bench/starve.sh [--nodes N] [--interval DURATION]... [--starve SECONDS]
#                   [--after SECONDS] [--warmup SECONDS] [--loops N]
#                   [--node-nice N] [--loop-nice N] [--out DIR]
#
# Inside a private network namespace (p2pmon-bench-$$, loopback only), one
# pass per --interval (default two: 5s, then 1s). Each pass starts N nodes
# (default 3, at most 9) on 127.0.0.2.. at niceness --node-nice (default 10)
# with --timestamps --http off; after --warmup seconds (default 2 x interval
# + 5) it starts --loops busy loops (default 2 x the core count; `while :;
# do :; done` in bash, each bounded by `timeout`) at niceness --loop-nice
# (default 0) for --starve seconds (default 60), then watches --after seconds
# more (default 15). Niceness is absolute, whatever this script's own, and
# nodes and loops share this script's session, hence one scheduler autogroup
# (checked: nice only ranks tasks within an autogroup).
#
# It counts every verdict line the nodes print (offline, back online, left,
# flapping, forgotten, cut off, restored) in the warm-up, during the
# starvation and after it (target: 0 in all three: nothing fails here), and
# from the "Received status" lines (the nodes' own --timestamps) the largest
# gap between statuses from each peer during starvation and after, against
# the peer's interval, the moment its status is late and its connection
# probed (interval + 0.5 s) and T (3 x interval, the offline threshold).
# It also prints how busy the cores were (/proc/stat) and, per node, the CPU
# it got and the time it waited on a run queue (/proc/PID/schedstat).
# PASS: no verdict line in any phase and every node alive at the end.
#
# P2PMON=path picks the binary (default: this checkout's release build,
# rebuilt if stale); P2PMON_BEFORE=path also runs a second cluster of the
# same size with that binary on 127.0.0.12.., starved in the same window, so
# before and after are measured side by side. Runs as root. Each pass takes
# warm-up + starve + after + ~2 s (about 92 s at 5s, 84 s at 1s). Every
# process it starts is stopped by PID and the namespace deleted on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
NODES=3
INTERVALS=()
STARVE=60
AFTER=15
WARMUP=""
LOOPS=$(( 2 * $(nproc) ))
NODE_NICE=10
LOOP_NICE=0
OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --nodes) NODES=$2; shift 2 ;;
        --interval) INTERVALS+=("$2"); shift 2 ;;
        --starve) STARVE=$2; shift 2 ;;
        --after) AFTER=$2; shift 2 ;;
        --warmup) WARMUP=$2; shift 2 ;;
        --loops) LOOPS=$2; shift 2 ;;
        --node-nice) NODE_NICE=$2; shift 2 ;;
        --loop-nice) LOOP_NICE=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        -h|--help) sed -n '2,37p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "error: unknown argument $1" >&2; exit 2 ;;
    esac
done
[ ${#INTERVALS[@]} -gt 0 ] || INTERVALS=(5s 1s)
for n in "$NODES" "$STARVE" "$AFTER" "$LOOPS" ${WARMUP:+"$WARMUP"}; do
    [[ $n =~ ^[0-9]+$ ]] || { echo "error: not a whole number: $n" >&2; exit 2; }
done
if [ "$NODES" -lt 2 ] || [ "$NODES" -gt 9 ]; then echo "error: --nodes must be 2..9" >&2; exit 2; fi
if [ "$STARVE" -lt 1 ] || [ "$STARVE" -gt 120 ]; then echo "error: --starve must be 1..120" >&2; exit 2; fi
if [ "$AFTER" -gt 60 ] || [ "$LOOPS" -lt 1 ] || [ "$LOOPS" -gt 64 ]; then
    echo "error: --after must be at most 60, --loops 1..64" >&2; exit 2
fi
if [ "$(id -u)" != 0 ]; then echo "error: run as root (network namespaces, negative niceness)" >&2; exit 2; fi

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
ensure_p2pmon
OUT=${OUT:-$(mktemp -d /tmp/p2pmon-starve.XXXXXX)}
mkdir -p "$OUT"
bench_setup "$OUT"
SELF_NICE=$(nice)

# seconds: a --interval value (5, 5s, 500ms, 1m) in seconds, for the report.
seconds() {
    python3 -c '
import re, sys
m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)?", sys.argv[1])
if not m: sys.exit("error: cannot read interval " + sys.argv[1])
print(float(m[1]) * {"ms": 0.001, "s": 1, "m": 60, None: 1}[m[2]])' "$1"
}

# start_cluster LABEL BIN FIRST INTERVAL: N nodes on 127.0.0.FIRST.., stdout
# (their timestamped lines) to OUT/LABEL-IP.out; PIDs in PIDFILE.
start_cluster() {
    local label=$1 bin=$2 first=$3 interval=$4 ips=() ip peers
    for (( k = 0; k < NODES; k++ )); do ips+=("127.0.0.$(( first + k ))"); done
    peers=$(IFS=,; echo "${ips[*]}")
    for ip in "${ips[@]}"; do
        ip netns exec "$NS" nice -n $(( NODE_NICE - SELF_NICE )) "$bin" --listen "$ip" \
            --peers "$peers" --interval "$interval" --http off --timestamps \
            >"$OUT/$label-$ip.out" 2>"$OUT/$label-$ip.err" &
        echo "$label $ip $!" >> "$PIDFILE"
    done
}

# stop_pids: every process in PIDFILE (this pass's nodes), TERM, then KILL
# after 3 s; PIDFILE emptied.
stop_pids() {
    local pids=() pid left
    while read -r _ _ pid; do pids+=("$pid"); done < "$PIDFILE"
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in $(seq 30); do
        left=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && left=1; done
        [ "$left" = 0 ] && break
        sleep 0.1
    done
    for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    : > "$PIDFILE"
}

# sample FILE: /proc/stat's cpu line, and per node the time its threads ran
# and waited on a run queue (the sums of /proc/PID/task/*/schedstat, ns).
sample() {
    local label ip pid sched
    {
        grep '^cpu ' /proc/stat
        while read -r label ip pid; do
            [ "$label" = loop ] && continue
            sched=$(cat "/proc/$pid"/task/*/schedstat 2>/dev/null \
                | awk '{ run += $1; wait += $2 } END { printf "%.0f %.0f\n", run, wait }')
            echo "node $label $ip $pid $sched"
        done < "$PIDFILE"
    } > "$1"
}

echo "# bench/starve.sh --nodes $NODES --interval ${INTERVALS[*]} --starve $STARVE --after $AFTER --loops $LOOPS --node-nice $NODE_NICE --loop-nice $LOOP_NICE"
echo "# $(date -u '+%Y-%m-%d %H:%M:%S UTC'); $(nproc) cores; $(uname -r); load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# after:  $P2PMON ($("$P2PMON" --version), p2pmon $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?') checkout)"
[ -z "${P2PMON_BEFORE:-}" ] || echo "# before: $P2PMON_BEFORE ($("$P2PMON_BEFORE" --version))"
echo "# raw data: $OUT"

status=0
for interval in "${INTERVALS[@]}"; do
    secs=$(seconds "$interval")
    warmup=${WARMUP:-$(python3 -c "import math; print(math.ceil(2 * $secs + 5))")}
    pass="$OUT/pass-$interval"
    mkdir -p "$pass"
    : > "$PIDFILE"
    start_cluster after "$P2PMON" 2 "$interval"
    [ -z "${P2PMON_BEFORE:-}" ] || start_cluster before "$P2PMON_BEFORE" 12 "$interval"
    echo "begin $(date +%s.%N)" > "$pass/phases"
    sleep "$warmup"
    check_alive
    sample "$pass/sample0"
    echo "starve $(date +%s.%N)" >> "$pass/phases"
    loops=()
    for (( k = 0; k < LOOPS; k++ )); do
        ip netns exec "$NS" timeout --kill-after=2 "$STARVE" \
            nice -n $(( LOOP_NICE - SELF_NICE )) bash -c 'while :; do :; done' &
        loops+=($!)
        echo "loop $k $!" >> "$PIDFILE"
    done
    sleep 1
    # nice ranks tasks within one autogroup only: the loops must share the nodes'.
    node_pid=$(awk 'NR == 1 {print $3}' "$PIDFILE")
    loop_child=$(pgrep -P "${loops[0]}" | head -n 1 || true)
    ag_node=$(cut -d' ' -f1 "/proc/$node_pid/autogroup" 2>/dev/null || echo none)
    ag_loop=$(cut -d' ' -f1 "/proc/${loop_child:-0}/autogroup" 2>/dev/null || echo none)
    echo "autogroup node $ag_node loop $ag_loop" >> "$pass/phases"
    ps -o pid=,ni=,comm= -p "$node_pid" "${loop_child:-$node_pid}" | sed 's/^/# /' > "$pass/nice"
    for pid in "${loops[@]}"; do wait "$pid" 2>/dev/null || true; done
    sample "$pass/sample1"
    echo "after $(date +%s.%N)" >> "$pass/phases"
    sed -i '/^loop /d' "$PIDFILE"
    sleep "$AFTER"
    echo "end $(date +%s.%N)" >> "$pass/phases"
    check_alive
    : > "$pass/dead"
    while read -r label ip pid; do
        kill -0 "$pid" 2>/dev/null || echo "$label $ip" >> "$pass/dead"
    done < "$PIDFILE"
    cp "$PIDFILE" "$pass/pids.txt"
    stop_pids
    for f in "$OUT"/*-127.0.0.*.out "$OUT"/*-127.0.0.*.err; do mv "$f" "$pass/"; done
    echo
    python3 - "$pass" "$interval" "$secs" "$NODES" "$LOOPS" "$LOOP_NICE" "$NODE_NICE" <<'PY' || status=1
import datetime, glob, os, re, sys

pass_dir, interval, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
nodes, loops, loop_nice, node_nice = map(int, sys.argv[4:])
dead_nodes = [line.split() for line in open(os.path.join(pass_dir, "dead")) if line.strip()]
phases = {}
for line in open(os.path.join(pass_dir, "phases")):
    key, *rest = line.split()
    phases[key] = rest if key == "autogroup" else float(rest[0])
t_begin, t_starve, t_after, t_end = (phases[k] for k in ("begin", "starve", "after", "end"))
probe_at, threshold = secs + 0.5, 3 * secs

TS = r"(\d{4}-\d\d-\d\dT[\d:.]+(?:[+-]\d\d:\d\d|Z))"
STATUS = re.compile(TS + r" Received status from (\S+?):")
VERDICT = re.compile(TS + r" (Peer (\S+) (is offline|is back online|left|is flapping|forgotten)\."
                     r"|Lost contact with all|Contact restored with)")

def ts(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()

def phase_of(t):
    return "warmup" if t < t_starve else "starve" if t < t_after else "after" if t <= t_end else None

def load_sample(name):
    cpu, per_node = None, {}
    for line in open(os.path.join(pass_dir, name)):
        f = line.split()
        if f[0] == "cpu":
            cpu = list(map(int, f[1:]))
        elif f[0] == "node":
            per_node[(f[1], f[2])] = (int(float(f[4])), int(float(f[5])))
    return cpu, per_node

cpu0, n0 = load_sample("sample0")
cpu1, n1 = load_sample("sample1")
dcpu = [b - a for a, b in zip(cpu0, cpu1)]
idle = dcpu[3] + dcpu[4]  # idle + iowait
busy_pct = 100.0 * (sum(dcpu[:8]) - idle) / max(1, sum(dcpu[:8]))
window = t_after - t_starve

print(f"## --interval {interval}: {nodes} nodes per cluster at nice {node_nice}, "
      f"{loops} busy loops at nice {loop_nice} for {window:.1f} s, then {t_end - t_after:.1f} s after")
ag = phases.get("autogroup", ["?", "?", "?", "?"])
same = ag[1] == ag[3] and ag[1] != "none"
print(f"cores busy during the starvation: {busy_pct:.1f} % (/proc/stat); "
      f"autogroup of node and loop: {ag[1]} / {ag[3]} ({'same' if same else 'DIFFERENT: nice does not rank them'})")
for line in open(os.path.join(pass_dir, "nice")):
    print(line.rstrip())
print(f"late (probe armed) after {probe_at:g} s of silence; offline (T) after {threshold:g} s")

failed = not same
for label in sorted({os.path.basename(p).split("-")[0] for p in glob.glob(os.path.join(pass_dir, "*-127.0.0.*.out"))}):
    verdicts = {"warmup": [], "starve": [], "after": []}
    rows = []
    worst = 0.0
    late = 0
    for path in sorted(glob.glob(os.path.join(pass_dir, f"{label}-127.0.0.*.out"))):
        me = os.path.basename(path)[len(label) + 1:-4]
        heard = {}
        for line in open(path, errors="replace"):
            m = STATUS.match(line)
            if m:
                heard.setdefault(m[2], []).append(ts(m[1]))
                continue
            m = VERDICT.match(line)
            if m:
                t = ts(m[1])
                ph = phase_of(t)
                if ph:
                    verdicts[ph].append(f"{me}: {line.strip()}")
        err = open(path[:-4] + ".err", errors="replace").read()
        warnings = len(re.findall(r"^warning: peer \S+ offline", err, re.M))
        cpu_s = (n1.get((label, me), (0, 0))[0] - n0.get((label, me), (0, 0))[0]) / 1e9
        wait_s = (n1.get((label, me), (0, 0))[1] - n0.get((label, me), (0, 0))[1]) / 1e9
        for peer in sorted(heard):
            times = sorted(heard[peer])
            in_window = [t for t in times if t_starve <= t <= t_end]
            before = [t for t in times if t < t_starve]
            points = before[-1:] + in_window
            gaps = [b - a for a, b in zip(points, points[1:])]
            if points:
                gaps.append(t_end - points[-1])  # a silence still open at the end counts too
            gap = max(gaps) if gaps else float("inf")
            warm = [t for t in times if t_begin <= t < t_starve]
            warm_gap = max((b - a for a, b in zip(warm, warm[1:])), default=0.0)
            worst = max(worst, gap)
            late += sum(1 for g in gaps if g > probe_at)
            rows.append((me, peer, len(in_window), (t_end - t_starve) / secs, warm_gap, gap))
        rows.append((me, "-", None, cpu_s, wait_s, warnings))
    print()
    print(f"### {label}")
    print(f"{'node':11s} {'from':11s} {'statuses':>8s} {'expected':>8s} {'gap warmup':>10s} {'gap starve+after':>16s}")
    for me, peer, got, expected, warm_gap, gap in rows:
        if got is None:
            print(f"{me:11s} {'(node)':11s} cpu {expected:.3f} s, waited on a run queue {warm_gap:.2f} s "
                  f"during the starvation; 'peer offline' warnings on stderr: {gap}")
        else:
            print(f"{me:11s} {peer:11s} {got:8d} {expected:8.0f} {warm_gap:9.2f}s {gap:15.2f}s")
    counts = {ph: len(v) for ph, v in verdicts.items()}
    print(f"verdict lines: warmup {counts['warmup']}, starvation {counts['starve']}, after {counts['after']} "
          f"(expected 0); largest gap {worst:.2f} s (interval {secs:g} s, probe at {probe_at:g} s, T {threshold:g} s); "
          f"gaps over {probe_at:g} s: {late}")
    for ph in ("warmup", "starve", "after"):
        for v in verdicts[ph][:10]:
            print(f"   {ph}: {v}")
    dead = [ip for lab, ip in dead_nodes if lab == label]
    bad = sum(counts.values()) > 0 or bool(dead)
    failed = failed or bad
    print(f"RESULT {label} --interval {interval}: {'FAIL' if bad else 'PASS'}"
          + (f" (not running at the end: {' '.join(dead)})" if dead else ""))
sys.exit(1 if failed else 0)
PY
    echo
done
echo "# overall: $([ "$status" = 0 ] && echo PASS || echo FAIL)"
exit "$status"
