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

step "cargo fmt --check"
cargo fmt --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy -q --all-targets -- -D warnings

step "cargo test (unit, codec, core, real strongSwan lab)"
cargo test --all-targets --no-fail-fast
cargo test --doc

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
