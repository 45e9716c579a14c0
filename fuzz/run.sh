#!/usr/bin/env bash
# Runs every fuzz target (or those named) for SECONDS each; prints one summary line per target.
#
#   fuzz/run.sh [SECONDS] [TARGET ...]        default: 60 s, every target
#
# Needs the nightly toolchain and cargo-fuzz (`rustup toolchain install nightly`,
# `cargo install cargo-fuzz`). New inputs go to fuzz/corpus/TARGET (not checked in); the
# checked-in seeds in fuzz/seeds/TARGET are only read. A crash leaves its input in
# fuzz/artifacts/TARGET/ and makes this script exit non-zero.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list)
cargo +nightly fuzz build >/dev/null 2>&1 || cargo +nightly fuzz build
status=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    log=$(mktemp)
    if cargo +nightly fuzz run "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=512 -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
        result=ok
    else
        result=FAILED; status=1
        tail -n 40 "$log" >&2
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2)
    feat=$(grep -o 'ft: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2)
    corpus=$(find "corpus/$t" -type f | wc -l)
    printf '%-14s %-6s %4ss  %10s runs  %7s/s  cov %5s  ft %6s  corpus %5s\n' \
        "$t" "$result" "$secs" "${runs:-?}" "${rate:-?}" "${cov:-?}" "${feat:-?}" "$corpus"
    rm -f "$log"
done
exit $status
