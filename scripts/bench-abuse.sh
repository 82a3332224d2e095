#!/usr/bin/env bash
# Hostile-input benchmark: one node on 127.60.0.1 (--interval 1s) and one
# honest peer on 127.60.0.2, then slowloris, connect/close storms, half-open
# connections and garbage floods from 127.61.0.0/16 (scripts/abuse.py).
# Prints a table: RSS/HWM/threads/fds per phase, the largest gap between the
# honest peer's statuses, attacker lines on stdout, rejection log lines.
#
#   scripts/bench-abuse.sh            env: P2PMON_BIN, ABUSE_OUT (output dir)
#
# Loopback only (127.60.0.0/16 and 127.61.0.0/16); bounded in time (~3 min).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${P2PMON_BIN:-$ROOT/target/release/p2pmon}
OUT=${ABUSE_OUT:-$ROOT/target/abuse/$(date +%Y%m%dT%H%M%S)-$$}
NODE=127.60.0.1
HONEST=127.60.0.2

if [[ ! -x $BIN ]]; then (cd "$ROOT" && cargo build --release); fi
mkdir -p "$OUT"
# 1000 + 200 + 500 attacker sockets at once, plus slack; the node raises its own.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 8192

NODE_PID= HONEST_PID=
cleanup() {
    for pid in $NODE_PID $HONEST_PID; do kill -9 "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "bench-abuse: $(date -Is), $(nproc) cores, $(uname -r), $("$BIN" --version), output $OUT"
"$BIN" --listen $NODE --peers $HONEST --interval 1s --format json >"$OUT/node.out" 2>"$OUT/node.err" &
NODE_PID=$!
"$BIN" --listen $HONEST --peers $NODE --interval 1s --format json >"$OUT/honest.out" 2>"$OUT/honest.err" &
HONEST_PID=$!

rc=0
timeout --kill-after=10 400 python3 "$ROOT/scripts/abuse.py" --pid "$NODE_PID" --out "$OUT" \
    --target $NODE --honest $HONEST | tee "$OUT/report.txt" || rc=$?

# Clean stop: SIGINT, exit 0 within a second.
for pid in $NODE_PID $HONEST_PID; do
    if kill -INT "$pid" 2>/dev/null; then
        start=$(date +%s%N); code=0
        wait "$pid" || code=$?
        echo "bench-abuse: pid $pid exit $code after $(( ($(date +%s%N) - start) / 1000000 )) ms" | tee -a "$OUT/report.txt"
        [[ $code == 0 ]] || rc=1
    else
        echo "bench-abuse: pid $pid already gone" | tee -a "$OUT/report.txt"; rc=1
    fi
done
NODE_PID= HONEST_PID=
exit "$rc"
