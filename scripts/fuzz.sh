#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo fuzz / libFuzzer) of what the network reaches
# first: the frame reader, the decoder and the seal gate (fuzz/fuzz_targets).
#
#   scripts/fuzz.sh SECONDS [TARGET]   # each target (or only TARGET) for SECONDS
#
# Builds the targets (release, with debug assertions and overflow checks, and
# AddressSanitizer), then runs each at the lowest priority (nice 19) for the
# time given, starting from the committed seeds (fuzz/seeds/TARGET) and the
# corpus grown by earlier runs (fuzz/corpus/TARGET, not committed). Prints per
# target the executions, the coverage and the findings; findings are saved
# in fuzz/artifacts/TARGET/ and make the script exit 1. Reproduce one with
#   cargo +nightly fuzz run TARGET fuzz/artifacts/TARGET/crash-...
# Not part of .ci/run (too long). SANITIZER=none builds without ASan (faster).
set -euo pipefail
cd "$(dirname "$0")/.."

all_targets=(frame_reader decode gate)
if [ $# -lt 1 ] || ! [[ "$1" =~ ^[0-9]+$ ]] || [ "$1" -lt 1 ]; then
    echo "usage: $0 SECONDS [TARGET]   (targets: ${all_targets[*]})" >&2
    exit 2
fi
seconds=$1
if [ $# -ge 2 ]; then
    case " ${all_targets[*]} " in
        *" $2 "*) targets=("$2") ;;
        *) echo "unknown target $2 (targets: ${all_targets[*]})" >&2; exit 2 ;;
    esac
else
    targets=("${all_targets[@]}")
fi

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# libFuzzer needs -Z flags: a nightly toolchain if one is installed, else the
# stable one told to accept them (RUSTC_BOOTSTRAP=1; works with Rust 1.95).
if cargo +nightly --version >/dev/null 2>&1; then
    cargo=(cargo +nightly)
else
    cargo=(cargo)
    export RUSTC_BOOTSTRAP=1
fi
sanitizer=(--sanitizer "${SANITIZER:-address}")

cd fuzz
echo "== build (${cargo[*]} fuzz build ${sanitizer[*]})"
nice -n 19 "${cargo[@]}" fuzz build "${sanitizer[@]}"

summary=()
found=0
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target" "artifacts/$target"
    log="artifacts/$target.log"
    before=$(find "artifacts/$target" -type f | wc -l)
    echo "== $target for ${seconds}s (log: fuzz/$log)"
    status=0
    nice -n 19 "${cargo[@]}" fuzz run "${sanitizer[@]}" "$target" \
        "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 >"$log" 2>&1 || status=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$log" | tail -1 || true)
    after=$(find "artifacts/$target" -type f | wc -l)
    findings=$((after - before))
    if [ "$status" -ne 0 ] || [ "$findings" -ne 0 ]; then
        found=1
        grep -E '^(==[0-9]+==ERROR|thread .* panicked|SUMMARY)' "$log" | head -5 || true
    fi
    summary+=("$target: ${execs:-?} executions (${rate:-?}/s), ${cov:-no coverage line}, $findings finding(s), exit $status")
done

echo "== summary (${seconds}s per target)"
printf '%s\n' "${summary[@]}"
exit "$found"
