# shellcheck shell=bash
# Shared by bench/compare.sh, bench/footprint.sh, bench/rss-growth.sh and
# bench/wire.sh (sourced, not run). A private network namespace (more than one
# with bench_netns), processes started in them and recorded by PID, and a trap
# that stops exactly those PIDs and deletes the namespaces.

NS="p2pmon-bench-$$"
PIDFILE=""
# the namespace start_node starts in (bench_netns changes it), and every
# namespace bench_setup and bench_netns made, for the cleanup
NODE_NS=$NS
NAMESPACES=()

# Install a Debian package if COMMAND is missing, without starting its
# system service: a policy-rc.d that exits 101 is put in place for the install
# only if none exists, and removed afterwards.
ensure_deb() {
    local cmd=$1 pkg=$2 ours=0
    command -v "$cmd" >/dev/null && return 0
    echo "installing $pkg (its system service is not started)" >&2
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        ours=1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null
    [ "$ours" = 0 ] || rm -f /usr/sbin/policy-rc.d
}

# PYTHON: the real interpreter (not a pyenv shim), so that the PID we record
# is the Python process itself.
ensure_psutil() {
    python3 -c 'import psutil' 2>/dev/null || python3 -m pip install --quiet psutil
    PYTHON=$(python3 -c 'import sys; print(sys.executable)')
}

# P2PMON: the release binary of this checkout, rebuilt if stale (a no-op when
# up to date: measuring an old binary once hid a fix), unless set.
ensure_p2pmon() {
    if [ -z "${P2PMON:-}" ]; then
        (cd "$ROOT" && cargo build --release --locked >&2)
        P2PMON=$ROOT/target/release/p2pmon
    fi
}

bench_cleanup() {
    local pid left
    if [ -n "$PIDFILE" ] && [ -f "$PIDFILE" ]; then
        for pid in $(awk '{print $3}' "$PIDFILE"); do
            kill -TERM "$pid" 2>/dev/null || true
        done
        for _ in $(seq 20); do
            left=0
            for pid in $(awk '{print $3}' "$PIDFILE"); do
                kill -0 "$pid" 2>/dev/null && left=1
            done
            [ "$left" = 0 ] && break
            sleep 0.1
        done
        for pid in $(awk '{print $3}' "$PIDFILE"); do
            kill -KILL "$pid" 2>/dev/null || true
        done
    fi
    local ns
    for ns in "${NAMESPACES[@]}"; do
        if ip netns list 2>/dev/null | grep -qw "$ns"; then
            # anything still in our private namespace was started by this script
            for pid in $(ip netns pids "$ns" 2>/dev/null); do
                kill -KILL "$pid" 2>/dev/null || true
            done
            ip netns del "$ns" 2>/dev/null || true
        fi
    done
}

# bench_setup OUTDIR: namespace up, trap set
bench_setup() {
    PIDFILE="$1/pids.txt"
    : > "$PIDFILE"
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
    NAMESPACES+=("$NS")
    ip netns add "$NS"
    ip netns exec "$NS" ip link set lo up
}

# bench_netns NAME: a further private namespace, $NS-NAME (loopback only, up),
# deleted on exit; start_node starts in it from now on.
bench_netns() {
    NODE_NS="$NS-$1"
    NAMESPACES+=("$NODE_NS")
    ip netns add "$NODE_NS"
    ip netns exec "$NODE_NS" ip link set lo up
}

# start_node SYSTEM NODE CMD...: run CMD in $NODE_NS (bench_setup's namespace
# unless bench_netns chose another), stdout to /dev/null, stderr to
# OUTDIR/SYSTEM-NODE.err; `ip netns exec` execs CMD, so $! is its PID.
start_node() {
    start_node_to /dev/null "$@"
}

# start_node_logged SYSTEM NODE CMD...: the same with stdout kept in
# OUTDIR/SYSTEM-NODE.out (bench/measure.py counts the "Received status" lines
# there).
start_node_logged() {
    start_node_to "$(dirname "$PIDFILE")/$1-$2.out" "$@"
}

start_node_to() {
    local stdout=$1 system=$2 node=$3
    shift 3
    ip netns exec "$NODE_NS" "$@" >"$stdout" 2>"$(dirname "$PIDFILE")/$system-$node.err" &
    echo "$system $node $!" >> "$PIDFILE"
}

check_alive() {
    local system node pid bad=0
    while read -r system node pid; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "warning: $system $node (pid $pid) is not running; its stderr:" >&2
            sed 's/^/    /' "$(dirname "$PIDFILE")/$system-$node.err" >&2 || true
            bad=1
        fi
    done < "$PIDFILE"
    return 0
}
