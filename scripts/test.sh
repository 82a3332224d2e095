#!/usr/bin/env bash
# The README's test command: installs what the tests need on a fresh Debian
# machine (run as root: the fault tests make network namespaces), then runs
# every test, the `#[ignore = "needs …"]` ones too (a plain `cargo test`
# skips those, for a laptop without root or these tools). Safe to rerun;
# installs nothing that is already there.
# `--deps-only` installs and stops (.ci/run then runs the suite itself).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=""
command -v ip >/dev/null || missing="$missing iproute2"          # namespaces (tests/faults)
command -v iptables >/dev/null || missing="$missing iptables"    # partitions, black holes
command -v faketime >/dev/null || missing="$missing faketime"    # clock jumps
command -v promtool >/dev/null || missing="$missing prometheus"  # promtool check metrics only
command -v chromium >/dev/null || missing="$missing chromium"    # the dashboard test (tests/web)
command -v tmux >/dev/null || missing="$missing tmux"            # drives `p2pmon top`'s screen
command -v systemd-analyze >/dev/null || missing="$missing systemd"  # verifies contrib/p2pmon.service
if [ -n "$missing" ]; then
    echo "== installing:$missing"
    # Install without starting any service (policy-rc.d 101 = "do not start").
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
    rm -f /usr/sbin/policy-rc.d
fi
# The Python original, for the interop test.
python3 -c 'import psutil' 2>/dev/null \
    || python3 -m pip install --quiet --disable-pip-version-check psutil

[ "${1:-}" = "--deps-only" ] && exit 0
# The one other ignored test is a benchmark, ignored for its cost, not for a
# need: in a debug build it takes 12 s of CPU beside timing-sensitive tests
# (scripts/bench-seal.sh runs it in release).
cargo test --locked -- --include-ignored --skip seal::tests::bench_
