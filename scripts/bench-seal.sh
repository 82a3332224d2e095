#!/usr/bin/env bash
# Sealed vs plaintext: bytes per status frame and CPU per seal / open.
# Rerun: scripts/bench-seal.sh   (release build; figures go to stdout)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release --quiet --lib seal::tests::bench_seal_and_open -- --ignored --nocapture 2>&1 \
    | grep -E "bytes|per message"
