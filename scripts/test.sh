#!/usr/bin/env bash
# The whole test suite, as CI runs it, from a fresh Debian 12 machine (run as root):
# installs what it needs, checks formatting and lints, runs unit, codec, core and real-strongSwan
# lab tests, the firmware-glue checks, and the emulated ARM / MIPS runs.
#
#   scripts/test.sh            everything
#   SWANDOG_CROSS_TARGETS="mips-unknown-linux-musl" scripts/test.sh   fewer emulated targets
#   SWANDOG_FUZZ_SECONDS=60 scripts/test.sh   also fuzz every parser (needs nightly, cargo-fuzz)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

step() { printf '\n=== %s\n' "$*" >&2; }

step "setup"
scripts/setup.sh
# strongSwan 6 for the second real-charon run (built once into /opt, then reused).
ss6_env=$(scripts/strongswan6.sh)

step "cargo fmt --check"
cargo fmt --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy -q --all-targets -- -D warnings

step "cargo test (unit, codec, core, real strongSwan lab)"
# The real-charon suites also run on strongSwan 6, beside the main run (own lab dir; lab names
# carry the pid). lab_verdict needs a quiet box, so its 6.x run comes after, alone.
ss6_suites=(lab_vici lab_keeper lab_faults lab_verdict)
mapfile -t ss6_bins < <(cargo test --all-targets --no-run 2>&1 | tee /dev/stderr |
    sed -n 's/^ *Executable tests\/\(lab_[a-z]*\)\.rs (\(.*\))$/\1 \2/p')
ss6_run() { # SUITE...: run those suites' test binaries on strongSwan 6; fails if any failed
    local s b rc=0; for s in "$@"; do for b in "${ss6_bins[@]}"; do [[ ${b%% *} == "$s" ]] || continue
        echo "--- strongSwan 6: $s" >&2
        # shellcheck disable=SC2086 # two VAR=PATH words
        env $ss6_env SWANDOG_LAB_DIR=/tmp/swandog-lab6 "${b#* }" || rc=1; done; done
    return $rc
}
ss6_log=$(mktemp /tmp/swandog-ss6.XXXXXX)
ss6_run "${ss6_suites[@]:0:3}" >"$ss6_log" 2>&1 & ss6_pid=$!
main_rc=0; cargo test --all-targets --no-fail-fast || main_rc=$?
cargo test --doc || main_rc=$?
ss6_rc=0; wait "$ss6_pid" || ss6_rc=$?   # never leave it running behind a failure
cat "$ss6_log" >&2
((main_rc == 0)) || exit "$main_rc"
((ss6_rc == 0)) || { echo "real-charon suites on strongSwan 6 failed" >&2; exit 1; }
step "real-charon suite lab_verdict on strongSwan 6"
ss6_run "${ss6_suites[@]:3}"

if [[ -n "${SWANDOG_FUZZ_SECONDS:-}" ]]; then
    step "fuzz: every target for ${SWANDOG_FUZZ_SECONDS} s (nightly + cargo-fuzz)"
    fuzz/run.sh "$SWANDOG_FUZZ_SECONDS"
fi

if [[ -x board/check.sh ]]; then
    step "firmware glue (busybox sh -n)"
    board/check.sh
fi

if [[ -x cross/test.sh ]]; then
    step "emulated ARM / MIPS"
    # shellcheck disable=SC2086
    cross/test.sh ${SWANDOG_CROSS_TARGETS:-mips-unknown-linux-musl armv7-unknown-linux-musleabihf}
    # The other two router targets: the binary itself under qemu (--version, sas, check, the
    # silent-peer deadline); their whole suite is `cross/test.sh TARGET`.
    # shellcheck disable=SC2086
    cross/test.sh --binary-only ${SWANDOG_CROSS_BINARY_TARGETS:-aarch64-unknown-linux-musl mipsel-unknown-linux-musl}
fi

step "all tests passed"
