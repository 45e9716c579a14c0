#!/usr/bin/env bash
# Runs swandog's tests for router targets under qemu-user emulation.
#   cross/test.sh [TARGET...]                  (default: all four, see cross/env.sh)
#   cross/test.sh --binary-only [TARGET...]    step 2 only, on a debug build of the binary
#
# Per target:
#  1. `cargo test --no-fail-fast --lib --bins --test <each tests/*.rs but those left out>` (debug
#     profile, target-cross/) and run under qemu-<arch>-static (the runner in .cargo/config.toml),
#     with SWANDOG_NO_LAB=1 so tests needing the real-strongSwan lab skip themselves. The lab needs
#     a real kernel and charon; it runs on the host in scripts/test.sh. Printed before the run:
#     every test file left out and every file whose lab tests skip themselves (signals_real,
#     discovery_real); after it: every test that printed SKIPPED. tests/emulated_timer.rs runs,
#     but under qemu it does not guard the mips fix_y2038 timer fix (see cross/README.md); the
#     rustflags check below does.
#  2. The swandog binary itself under qemu: `--version`, then `sas`, `sas --json` and `check`
#     against cross/fake_vici.py (captured charon frames) on a Unix socket, and `sas` against a
#     peer that never answers (must fail with a timeout, not hang: the timer bug again).
#     The debug binary from step 1 always; dist/swandog-<target> too when present (cross/build.sh).
# Prints "N passed, N failed" at the end; exits non-zero on any failure.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
"$CROSS_DIR/install-toolchain.sh" >/dev/null
use_debian_toolchain

binary_only=0
if [[ ${1:-} == --binary-only ]]; then binary_only=1; shift; fi
targets=("$@"); ((${#targets[@]})) || targets=("${ALL_TARGETS[@]}")
check_targets "${targets[@]}"
TARGET_DIR=${SWANDOG_CROSS_TARGET_DIR:-$REPO_DIR/target-cross}
cd "$REPO_DIR"
export SWANDOG_NO_LAB=1
# Skips here are on purpose and listed (below); scripts/test.sh's "a skip is a failure" is for
# the host run.
unset SWANDOG_REQUIRE_REAL
# The test profile under emulation: optimised a little (qemu runs unoptimised code 5-10x slower:
# the randomized parser tests took minutes) and without debug info (faster std build and links);
# debug assertions and overflow checks stay on, as in any dev build. Still the dev profile, so
# no clash with the build-std release builds of cross/build.sh.
export CARGO_PROFILE_DEV_OPT_LEVEL=${CARGO_PROFILE_DEV_OPT_LEVEL:-1}
export CARGO_PROFILE_DEV_DEBUG=${CARGO_PROFILE_DEV_DEBUG:-0}

# Integration tests that cannot run under qemu-user, space-separated (override with
# SWANDOG_CROSS_SKIP_TESTS): lab* need the real-strongSwan lab; sysv_script drives the init script
# through busybox, which must exec the target binary (no binfmt_misc here) and needs
# prctl(PR_SET_CHILD_SUBREAPER), which qemu-user does not implement; faults, security, soak,
# busybox_init and config_flags start the swandog binary as a child process, which a qemu-user test process cannot
# exec either
# (the binary itself is checked below: --version, sas, check against a scripted peer);
# zero_growth replays 100 000 inputs, minutes under qemu, and proves nothing byte-order related.
skip=" ${SWANDOG_CROSS_SKIP_TESTS:-sysv_script faults security soak busybox_init zero_growth config_flags} "
test_args=(--lib --bins)
skipped=()
for f in tests/*.rs; do
    name=$(basename "$f" .rs)
    case $name in lab*) skipped+=("$name"); continue ;; esac
    case $skip in *" $name "*) skipped+=("$name"); continue ;; esac
    test_args+=(--test "$name")
done
# Built and run, but their lab tests return at once under SWANDOG_NO_LAB.
selfskip=()
for a in "${test_args[@]}"; do
    [[ -f tests/$a.rs ]] && grep -q 'lab_disabled(' "tests/$a.rs" && selfskip+=("$a")
done
if ((binary_only)); then
    echo "binary checks only: the test suite of these targets runs with cross/test.sh TARGET"
else
    echo "left out under emulation: integration tests ${skipped[*]:-none}; doc tests (host only)"
    echo "run, but their lab tests skip themselves (SWANDOG_NO_LAB): ${selfskip[*]:-none}"
fi

passed=0 failed=0 failures=()
ok() { passed=$((passed + 1)); echo "  ok   $*"; }
bad() { failed=$((failed + 1)); failures+=("$*"); echo "  FAIL $*"; }

work=$(mktemp -d)
peer_pid=
cleanup() { [[ -n $peer_pid ]] && kill "$peer_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

# start_peer NAME [fake_vici args...]: starts cross/fake_vici.py on $work/NAME.vici.
start_peer() {
    local sock=$work/$1.vici; shift
    python3 "$CROSS_DIR/fake_vici.py" --socket "$sock" --log "$work/peer.log" "$@" \
        >"$work/peer.out" 2>&1 &
    peer_pid=$!
    for _ in $(seq 100); do [[ -S $sock ]] && return 0; sleep 0.05; done
    echo "fake_vici did not start:" >&2; cat "$work/peer.out" >&2; return 1
}
stop_peer() { kill "$peer_pid" 2>/dev/null || true; wait "$peer_pid" 2>/dev/null || true; peer_pid=; }

# check_binary TARGET BIN LABEL
check_binary() {
    local t=$1 bin=$2 label=$3 qemu out rc
    qemu=$(qemu_for "$t")
    if out=$(timeout 60 "$qemu" "$bin" --version 2>&1) && [[ $out == *"$t"* ]]; then
        ok "$label --version: $out"
    else
        bad "$label --version: $out"
    fi

    start_peer normal
    local uri=unix://$work/normal.vici
    if out=$(timeout 60 "$qemu" "$bin" sas --vici "$uri" 2>&1) &&
        [[ $out == *con1* && $out == *con2_1* && $out == *con2_2* && $out == *42* ]]; then
        ok "$label sas (captured list-sa frames)"
    else
        bad "$label sas: $out"
    fi
    if out=$(timeout 60 "$qemu" "$bin" sas --json --vici "$uri" 2>&1) &&
        python3 -c 'import json,sys; d=json.loads(sys.argv[1]); names={i["name"] for i in d}; assert names=={"con1","con2"}, names' "$out" 2>/dev/null; then
        ok "$label sas --json"
    else
        bad "$label sas --json: $out"
    fi
    if out=$(timeout 60 "$qemu" "$bin" check --vici "$uri" 2>&1) && [[ $out == *5.9.8* && $out == *con2_2* ]]; then
        ok "$label check (version + list-conns)"
    else
        bad "$label check: $out"
    fi
    stop_peer

    # A peer that reads but never answers: the call deadline (a smol Timer) must end it.
    start_peer stall --script stall
    local t0=$SECONDS
    out=$(timeout 60 "$qemu" "$bin" sas --vici "unix://$work/stall.vici" 2>&1) && rc=0 || rc=$?
    if ((rc != 0 && rc != 124)) && [[ $out == *time* ]]; then
        ok "$label sas against a silent peer fails in $((SECONDS - t0)) s: $out"
    else
        bad "$label sas against a silent peer: rc=$rc (124 = hung) $out"
    fi
    stop_peer
}

for t in "${targets[@]}"; do
    echo "=== $t"
    start=$SECONDS
    if [[ $t == mips* ]]; then
        # qemu-user 7.2 has no timerfd_settime64 on mips ("Unknown syscall 4411"), so musl takes
        # another path there than on a real kernel and tests/emulated_timer.rs passes even without
        # the fix (see cross/README.md). Guard the configuration itself as well.
        flags=$(cargo -Zunstable-options config get --format json-value "target.$t.rustflags" 2>&1 || true)
        if [[ $flags == *fix_y2038* ]]; then ok "$t rustflags carry --cfg fix_y2038"; else bad "$t rustflags lack --cfg fix_y2038: $flags"; fi
    fi
    if ((binary_only)); then
        if cargo-zigbuild build --locked --bin swandog --target "$t" "${BUILD_STD[@]}" \
            --target-dir "$TARGET_DIR" >"$work/cargo-build.log" 2>&1; then
            ok "$t debug build ($((SECONDS - start)) s)"
        else
            tail -40 "$work/cargo-build.log"
            bad "$t debug build"
        fi
    # Debug profile on purpose: `cargo test --release` beside the build-std release build in the
    # same target dir fails with "duplicate lang item".
    # --nocapture: every test's SKIPPED line reaches the log, listed after the run.
    elif cargo-zigbuild test --locked --no-fail-fast --target "$t" "${BUILD_STD[@]}" --target-dir "$TARGET_DIR" \
        "${test_args[@]}" -- --nocapture 2>&1 | tee "$work/cargo-test.log" | grep -E '^(test result|running|error|test .*FAILED|.*panicked)'; [[ ${PIPESTATUS[0]} == 0 ]]; then
        ok "$t cargo test under $(qemu_for "$t") ($((SECONDS - start)) s)"
    else
        tail -40 "$work/cargo-test.log"
        bad "$t cargo test under $(qemu_for "$t")"
    fi
    if ((!binary_only)); then
        echo "  skipped at run time under emulation:"
        grep -o 'SKIPPED.*' "$work/cargo-test.log" | sort -u | sed 's/^/    /' || echo "    none"
    fi
    debug_bin=$TARGET_DIR/$t/debug/swandog
    if [[ -x $debug_bin ]]; then
        check_binary "$t" "$debug_bin" "$t debug"
    else
        bad "$t: no debug binary at $debug_bin"
    fi
    if [[ -x dist/swandog-$t ]]; then
        check_binary "$t" "dist/swandog-$t" "$t dist"
    fi
done

echo
for f in "${failures[@]}"; do echo "failed: $f"; done
echo "cross: $passed passed, $failed failed"
((failed == 0))
