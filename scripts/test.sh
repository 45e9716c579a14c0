#!/usr/bin/env bash
# The whole test suite, as CI runs it, from a fresh Debian 12 machine (run as root):
# installs what it needs, checks formatting and lints, runs unit, codec, core and real-strongSwan
# lab tests (a test that would skip for want of root, charon, busybox or syslogd fails here), the
# budget check of the shipped binary (cross/budget.sh), the firmware-glue checks, and the emulated
# ARM / MIPS runs. Each step has a time bound; a step that overruns fails with its name.
#
#   scripts/test.sh            everything
#   SWANDOG_TEST_STEP_S=1800 scripts/test.sh   a longer bound per test target (default 900 s)
#   SWANDOG_CROSS_TARGETS="mips-unknown-linux-musl" scripts/test.sh   fewer emulated targets
#   SWANDOG_FUZZ_SECONDS=60 scripts/test.sh   also fuzz every parser (needs nightly, cargo-fuzz)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

step() { printf '\n=== %s\n' "$*" >&2; }
# Every step is bounded (coreutils timeout: SIGTERM to the step's process group, SIGKILL 30 s
# later), so a wedged test fails with its name instead of eating CI's time; libtest also names
# each test that runs for over 60 s. `check` records a failure and goes on; `must` stops.
failed=()
check() { # SECONDS NAME COMMAND...
    local secs=$1 name=$2 rc=0; shift 2
    timeout -k 30 "$secs" "$@" || rc=$?
    ((rc == 0)) && return 0
    ((rc == 124 || rc == 137)) && name+=" (TIMED OUT after $secs s)"
    failed+=("$name"); echo "FAILED: $name" >&2; return 1
}
must() { check "$@" || { printf 'failed: %s\n' "${failed[@]}" >&2; exit 1; }; }
T=${SWANDOG_TEST_STEP_S:-900}   # bound of one test target

step "setup"
must 1800 setup scripts/setup.sh
# strongSwan 6 for the second real-charon run (built once into /opt, then reused).
ss6_env=$(timeout 3600 scripts/strongswan6.sh)

step "cargo fmt --check"
must 120 "cargo fmt" cargo fmt --check

step "cargo clippy --all-targets -- -D warnings"
must 3600 "cargo clippy" cargo clippy -q --all-targets -- -D warnings

step "cargo test (unit, codec, core, real strongSwan lab), each target bounded by $T s"
# Host runs test the real components: no skip switch survives, and a test that cannot reach one
# (root, charon, busybox, syslogd) fails instead of skipping (tests/common/mod.rs skip_real).
unset SWANDOG_NO_LAB
export SWANDOG_REQUIRE_REAL=1
must 3600 "cargo test --no-run" cargo test --all-targets --no-run
# The real-charon suites also run on strongSwan 6, beside the main run (own lab dir; lab names
# carry the pid). lab_verdict needs a quiet box, so its 6.x run comes after, alone.
ss6_suites=(lab_vici lab_keeper lab_faults lab_verdict)
mapfile -t ss6_bins < <(cargo test --all-targets --no-run 2>&1 |
    sed -n 's/^ *Executable tests\/\(lab_[a-z]*\)\.rs (\(.*\))$/\1 \2/p')
ss6_run() { # SUITE...: run those suites' test binaries on strongSwan 6, each bounded by $T s
    local s b rc=0; for s in "$@"; do for b in "${ss6_bins[@]}"; do [[ ${b%% *} == "$s" ]] || continue
        echo "--- strongSwan 6: $s" >&2
        # shellcheck disable=SC2086 # two VAR=PATH words
        timeout -k 30 "$T" env $ss6_env SWANDOG_LAB_DIR=/tmp/swandog-lab6 "${b#* }" ||
            { rc=$?; echo "FAILED: $s on strongSwan 6 (rc $rc; 124 = TIMED OUT after $T s)" >&2; }
    done; done
    return $rc
}
ss6_log=$(mktemp /tmp/swandog-ss6.XXXXXX)
ss6_run "${ss6_suites[@]:0:3}" >"$ss6_log" 2>&1 & ss6_pid=$!
for t in --lib --bins $(for f in tests/*.rs; do basename "$f" .rs; done | sed 's/^/--test=/'); do
    check "$T" "cargo test $t" cargo test "$t" || true
done
check 600 "cargo test --doc" cargo test --doc || true
wait "$ss6_pid" || failed+=("real-charon suites on strongSwan 6")   # never left running behind
cat "$ss6_log" >&2
step "real-charon suite lab_verdict on strongSwan 6"
ss6_run "${ss6_suites[@]:3}" || failed+=("lab_verdict on strongSwan 6")

step "budgets of the shipped binary (cross/budget.sh: anon, peak RSS, CPU/hour, stripped size)"
check 1800 "cross/budget.sh" cross/budget.sh || true

if [[ -n "${SWANDOG_FUZZ_SECONDS:-}" ]]; then
    step "fuzz: every target for ${SWANDOG_FUZZ_SECONDS} s (nightly + cargo-fuzz)"
    check $((3600 + 20 * SWANDOG_FUZZ_SECONDS)) fuzz fuzz/run.sh "$SWANDOG_FUZZ_SECONDS" || true
fi

if [[ -x board/check.sh ]]; then
    step "firmware glue (busybox sh -n)"
    check 300 board/check.sh board/check.sh || true
fi

if [[ -x cross/test.sh ]]; then
    step "emulated ARM / MIPS"
    # shellcheck disable=SC2086
    check 5400 "cross/test.sh" cross/test.sh ${SWANDOG_CROSS_TARGETS:-mips-unknown-linux-musl armv7-unknown-linux-musleabihf} || true
    # The other two router targets: the binary itself under qemu (--version, sas, check, the
    # silent-peer deadline); their whole suite is `cross/test.sh TARGET`.
    # shellcheck disable=SC2086
    check 3600 "cross/test.sh --binary-only" cross/test.sh --binary-only ${SWANDOG_CROSS_BINARY_TARGETS:-aarch64-unknown-linux-musl mipsel-unknown-linux-musl} || true
fi

if ((${#failed[@]})); then
    printf '\nfailed: %s\n' "${failed[@]}" >&2
    exit 1
fi
step "all tests passed"
