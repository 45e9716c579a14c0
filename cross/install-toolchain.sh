#!/usr/bin/env bash
# Installs the cross toolchain for swandog's router targets on Debian 12 (run as root).
# Idempotent: when everything is present it makes no network calls and returns in well under a
# second. What it installs and why: see cross/README.md.
#
#   apt : qemu-user-static (runs the target binaries/tests), rustc-web + cargo-web + rust-web-src
#         (Rust 1.96 with std sources, for -Zbuild-std; rustup cannot download targets here),
#         python3-venv (for the pip step below), llvm (llvm-strip, llvm-nm), file
#   pip : ziglang + cargo-zigbuild in a private venv (zig is the C toolchain and linker and ships
#         musl for every target, including big-endian mips)
#   rustup: `rustup toolchain link deb /usr`, so `cargo +deb …` picks Debian's toolchain
#
# Prints nothing but "toolchain ok" on the fast path. Environment:
#   SWANDOG_CROSS_HOME  where the venv lives (default /opt/swandog-cross)
set -euo pipefail

CROSS_HOME=${SWANDOG_CROSS_HOME:-/opt/swandog-cross}
VENV=$CROSS_HOME/venv
# Pinned: the versions verified to build all four targets (see cross/README.md).
ZIGLANG_VERSION=0.17.1
ZIGBUILD_VERSION=0.24.1
# llvm: llvm-strip for foreign-arch ELF (zig's -s leaves MIPS .pdr sections, ~90 KB), llvm-nm
# for cross/size.sh.
APT_PKGS=(qemu-user-static rustc-web cargo-web rust-web-src python3-venv file llvm)

log() { echo "install-toolchain: $*" >&2; }

# --- apt --------------------------------------------------------------------------------------
missing=()
for p in "${APT_PKGS[@]}"; do
    # dpkg-query is local only; "install ok installed" means fully configured.
    if [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" != "install ok installed" ]]; then
        missing+=("$p")
    fi
done
if ((${#missing[@]})); then
    [[ $(id -u) == 0 ]] || { log "need root to apt-get install: ${missing[*]}"; exit 1; }
    log "apt-get install ${missing[*]}"
    # Another apt may be running (e.g. unattended upgrades): wait for the lock instead of failing.
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# --- pip (ziglang + cargo-zigbuild) in a venv -------------------------------------------------
have_pip_pkgs() {
    [[ -x $VENV/bin/cargo-zigbuild && -x $VENV/bin/python3 ]] || return 1
    [[ "$("$VENV/bin/cargo-zigbuild" --version 2>/dev/null)" == *" $ZIGBUILD_VERSION" ]] || return 1
    # Read the installed ziglang version from its dist-info name: no interpreter start-up needed.
    compgen -G "$VENV/lib/python3*/site-packages/ziglang-$ZIGLANG_VERSION.dist-info" >/dev/null
}
if ! have_pip_pkgs; then
    log "pip install ziglang==$ZIGLANG_VERSION cargo-zigbuild==$ZIGBUILD_VERSION into $VENV"
    mkdir -p "$CROSS_HOME"
    # Debian's own python3 (not a pyenv shim) so the venv survives user-level python changes.
    PY=/usr/bin/python3; [[ -x $PY ]] || PY=python3
    [[ -x $VENV/bin/python3 ]] || "$PY" -m venv "$VENV"
    "$VENV/bin/python3" -m pip install -q --disable-pip-version-check \
        "ziglang==$ZIGLANG_VERSION" "cargo-zigbuild==$ZIGBUILD_VERSION" >&2
    have_pip_pkgs || { log "pip install did not give the pinned versions"; exit 1; }
fi

# --- rustup: link Debian's toolchain as "deb" -------------------------------------------------
if command -v rustup >/dev/null 2>&1; then
    if ! rustup toolchain list 2>/dev/null | grep -q '^deb\b'; then
        log "rustup toolchain link deb /usr"
        rustup toolchain link deb /usr
    fi
fi
# Debian's std sources must match Debian's rustc exactly, or -Zbuild-std fails obscurely.
[[ -f /usr/lib/rustlib/src/rust/library/Cargo.lock ]] || { log "rust-web-src missing?"; exit 1; }

echo "toolchain ok"
