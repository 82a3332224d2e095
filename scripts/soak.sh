#!/usr/bin/env bash
# Soak test: NODES p2pmon nodes for DURATION_S seconds at --interval 1s inside a
# network namespace of their own, under a seeded random fault schedule (kill -9
# + restart, SIGINT leave + restart, one iptables partition + heal). Compares
# every node's JSON events with the ground truth; exits non-zero on any false
# or missed transition.
#
#   scripts/soak.sh [DURATION_S=600] [NODES=5]
#   env: SEED (default: random, printed), P2PMON_BIN, SOAK_OUT (output dir)
#
# Needs root (ip netns, iptables). Touches nothing outside the namespace it
# creates, and removes it on exit.
set -euo pipefail

DURATION=${1:-600}
NODES=${2:-5}
SEED=${SEED:-$(( (RANDOM << 15) | RANDOM ))}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${P2PMON_BIN:-$ROOT/target/release/p2pmon}
OUT=${SOAK_OUT:-$ROOT/target/soak/$(date +%Y%m%dT%H%M%S)-$$}
NS=p2pmon-soak-$$

[[ $DURATION =~ ^[0-9]+$ && $NODES =~ ^[0-9]+$ ]] || { echo "usage: $0 [DURATION_S] [NODES]" >&2; exit 2; }
(( NODES >= 2 && NODES <= 200 )) || { echo "soak: NODES must be 2..200" >&2; exit 2; }
[[ $(id -u) == 0 ]] || { echo "soak: needs root (ip netns, iptables)" >&2; exit 2; }
command -v iptables >/dev/null || { echo "soak: iptables missing (apt-get install iptables)" >&2; exit 2; }
if [[ ! -x $BIN ]]; then (cd "$ROOT" && cargo build --release); fi
mkdir -p "$OUT"

cleanup() {
    # Only processes inside our own namespace, which this script started.
    for pid in $(ip netns pids "$NS" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$NS" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$NS"
ip netns exec "$NS" ip link set lo up

echo "soak: $NODES nodes, $DURATION s, seed $SEED, namespace $NS, output $OUT"
echo "soak: $(date -Is), $(nproc) cores, $(uname -r), $("$BIN" --version)"
"$BIN" --version >"$OUT/version"
# The driver runs inside the namespace: nodes, iptables and /proc reads all happen there.
timeout --kill-after=10 $(( DURATION + 90 )) \
    ip netns exec "$NS" python3 "$ROOT/scripts/soak.py" run \
        --out "$OUT" --bin "$BIN" --duration "$DURATION" --nodes "$NODES" --seed "$SEED"
python3 "$ROOT/scripts/soak.py" analyze "$OUT" | tee "$OUT/report.txt"
exit "${PIPESTATUS[0]}"
