#!/usr/bin/env bash
# Regenerates link/text-order.ld, the linker script that gathers the
# functions a node runs into one block at the start of the binary's text
# (issue 15, footprint). Why: a page fault maps the 64 KiB around the page it
# touches, so a node's resident text follows how far apart the functions it
# runs lie, not how many there are; gathered, the node maps ~0.6 MiB less of
# its 1.6 MiB of text. build.rs passes the script to the linker for release
# builds; a function missing from it only costs the 64 KiB around it.
#
#   scripts/text-order.sh        (as root: network namespaces; needs valgrind)
#
# How: builds the release binary with its symbols (CARGO_PROFILE_RELEASE_STRIP
# =false, in target/text-order), runs its nodes under valgrind's callgrind
# in a private namespace through a workload that touches the paths a node
# runs in normal life, plain and sealed: start with its peers down (refusals,
# warnings, offline), statuses at 1 s, every HTTP route, a peer frozen
# (late status, probe, offline, back online), a peer killed and restarted, a
# garbage sender (rejections), SIGHUP, SIGTERM; then three nodes
# started at once at the default interval, as bench/footprint.sh runs them. Every function callgrind saw
# in the binary becomes one pattern (`.text.NAME` and `.text.unlikely.NAME`,
# the legacy mangling's hash and LLVM's numeric suffix of a renamed local copy
# globbed, so the list survives rebuilds). Bounded:
# about 4 minutes of workload; every process it starts is stopped by PID and
# the namespace deleted on exit.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ "$(id -u)" != 0 ]; then echo "error: run as root (network namespaces)" >&2; exit 2; fi
command -v valgrind >/dev/null || { echo "error: needs valgrind" >&2; exit 2; }
cd "$ROOT"
export CARGO_TARGET_DIR=$ROOT/target/text-order
P2PMON_NO_TEXT_ORDER=1 CARGO_PROFILE_RELEASE_STRIP=false cargo build --release --quiet --bin p2pmon
BIN=$CARGO_TARGET_DIR/release/p2pmon
WORK=$(mktemp -d)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"        # the namespace, nodes recorded by PID, the cleanup
bench_setup "$WORK"
trap 'bench_cleanup; rm -rf "$WORK"' EXIT
X=(ip netns exec "$NS")
"$BIN" keygen --out "$WORK/key" >/dev/null

# Every node runs under callgrind: what a node runs depends on what its peers
# do to it, so each side of every event is profiled (a node killed with
# SIGKILL leaves no profile; its restart does).
node() { # node NAME IP INTERVAL HTTP OTHERS...: starts a node; its pid in $LAST
    local name=$1 ip=$2 interval=$3 http=$4; shift 4
    start_node_to "$WORK/$name-$ip.out" "$name" "$ip" \
        valgrind --tool=callgrind --demangle=no --callgrind-out-file="$WORK/$name.%p.cg" \
        "$BIN" --listen "$ip" --peers "$(IFS=,; echo "$*")" --interval "$interval" --http "$http" "${extra[@]}"
    LAST=$(awk 'END {print $3}' "$PIDFILE")
}
stop() { # stop SIGNAL PID...: signal the nodes, then wait (bounded) until callgrind has written its profile
    local sig=$1 p; shift
    kill "-$sig" "$@" 2>/dev/null || true
    for p in "$@"; do
        for _ in $(seq 150); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
    done
}
get() { "${X[@]}" curl -s -o /dev/null --max-time 5 -H 'Host: 127.0.0.2:5080' "http://127.0.0.2:5080$1" || true; }

run_workload() { # run_workload NAME  (uses $extra)
    local name=$1 a b c
    node "$name" 127.0.0.2 1s 127.0.0.2:5080 127.0.0.3 127.0.0.4; a=$LAST
    sleep 8                                   # peers down: refusals, warnings, offline
    node "$name" 127.0.0.3 1s off 127.0.0.2 127.0.0.4; b=$LAST
    node "$name" 127.0.0.4 1s off 127.0.0.2 127.0.0.3; c=$LAST
    sleep 15                                  # statuses, members, back online
    for p in / /metrics /status /history /healthz /nope; do get "$p"; done
    "${X[@]}" python3 - <<'PY' || true
import socket, time
s = socket.create_connection(("127.0.0.2", 5000), timeout=3)
s.sendall(b'{"not": "a status"}\n' + b"\x00garbage\n" + b"x" * 70000 + b"\n")
time.sleep(1); s.close()
PY
    sleep 3
    kill -STOP "$b"; sleep 10; kill -CONT "$b"  # late status, probe, offline, back
    sleep 6
    stop KILL "$c"; sleep 5                    # crash: offline at once
    node "$name" 127.0.0.4 1s off 127.0.0.2 127.0.0.3; c=$LAST
    sleep 8
    kill -HUP "$a"; sleep 4
    get /status; get /metrics
    stop TERM "$a" "$b" "$c"
    echo "$name: $(cat "$WORK/$name"-*.out | grep -c '^Received status') status lines" >&2
}
together() { # together NAME: three nodes started at once at the default interval, as bench/footprint.sh does
    local name=$1 a b c
    node "$name" 127.0.0.2 5s 127.0.0.2:5080 127.0.0.3 127.0.0.4; a=$LAST
    node "$name" 127.0.0.3 5s 127.0.0.3:5080 127.0.0.2 127.0.0.4; b=$LAST
    node "$name" 127.0.0.4 5s 127.0.0.4:5080 127.0.0.2 127.0.0.3; c=$LAST
    sleep 40
    stop TERM "$a" "$b" "$c"
    echo "$name: $(cat "$WORK/$name"-*.out | grep -c '^Received status') status lines" >&2
}
extra=(); run_workload plain; together together
extra=(--key-file "$WORK/key"); run_workload sealed; together together-sealed

python3 - "$BIN" "$WORK"/*.cg >"$ROOT/link/text-order.ld" <<'PY'
import re, sys
binary, outputs = sys.argv[1], sys.argv[2:]
names = {}
for path in outputs:
    objects, functions, current = {}, {}, None
    for line in open(path, errors="replace"):
        m = re.match(r"^(c?ob|c?fn)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
        if not m:
            continue
        kind, ident, name = m.groups()
        table = objects if kind.endswith("ob") else functions
        if name is not None:
            table[ident] = name
        if kind == "ob":
            current = objects[ident]
        elif kind == "fn" and current == binary:
            n = re.sub(r"'\d+$", "", functions[ident])          # callgrind's recursion marks
            n = re.sub(r"\.\d+$", "", n)                        # LLVM's suffix on a renamed local copy
            n = re.sub(r"17h[0-9a-f]{16}E$", "17h*E", n)        # legacy mangling's hash
            # (callgrind names a code range without a symbol by its address)
            if re.fullmatch(r"[A-Za-z0-9_$.*]+", n) and not n.startswith("0x"):
                names.setdefault(n, None)
print("/* Generated by scripts/text-order.sh: the functions a node runs, gathered at")
print("   the start of the text (see that script and build.rs). Do not edit by hand. */")
print("SECTIONS\n{\n  .text.p2pmon_used :\n  {")
for n in names:
    print(f"    *(.text.{n} .text.{n}.* .text.unlikely.{n} .text.unlikely.{n}.*)")
print("  }\n}\nINSERT BEFORE .text;")
print(f"{len(names)} functions", file=sys.stderr)
PY
echo "wrote link/text-order.ld" >&2
