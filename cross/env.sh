# Sourced by cross/build.sh and cross/test.sh: common settings for the cross toolchain.
# shellcheck shell=bash
CROSS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$CROSS_DIR/.." && pwd)
CROSS_HOME=${SWANDOG_CROSS_HOME:-/opt/swandog-cross}
ALL_TARGETS=(armv7-unknown-linux-musleabihf aarch64-unknown-linux-musl mipsel-unknown-linux-musl mips-unknown-linux-musl)
# Built only when named: the host-architecture static binary that cross/bench.sh measures.
EXTRA_TARGETS=(x86_64-unknown-linux-musl)

# zig + cargo-zigbuild from the venv made by install-toolchain.sh. cargo-zigbuild finds zig as
# `python3 -m ziglang`, so the venv's python3 must come first too.
export PATH="$CROSS_HOME/venv/bin:$PATH"
# -Zbuild-std is unstable; Debian's stable 1.96 accepts it with this.
export RUSTC_BOOTSTRAP=1

# Debian's toolchain: through rustup's "deb" link when rustup exists (rustup's proxies come first
# in PATH and have no rust-src), else /usr/bin directly. Exported, so the cargo that
# cargo-zigbuild starts is Debian's too. Call this after install-toolchain.sh (which links "deb").
use_debian_toolchain() {
    if command -v rustup >/dev/null 2>&1; then
        export RUSTUP_TOOLCHAIN=deb
    else
        export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
        export PATH="/usr/bin:$PATH"
    fi
}

# std is rebuilt for every target (no prebuilt std for them here); panic_abort matches
# profile.release's panic = "abort".
BUILD_STD=(-Zbuild-std=std,panic_abort)

check_targets() {
    local t
    for t in "$@"; do
        case " ${ALL_TARGETS[*]} ${EXTRA_TARGETS[*]} " in *" $t "*) ;; *) echo "unknown target: $t (known: ${ALL_TARGETS[*]} ${EXTRA_TARGETS[*]})" >&2; exit 2 ;; esac
    done
}

qemu_for() {
    case $1 in
        armv7-*) echo qemu-arm-static ;;
        aarch64-*) echo qemu-aarch64-static ;;
        mipsel-*) echo qemu-mipsel-static ;;
        mips-*) echo qemu-mips-static ;;
    esac
}
