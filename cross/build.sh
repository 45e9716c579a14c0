#!/usr/bin/env bash
# Builds static, stripped release binaries of swandog for router targets.
#   cross/build.sh [TARGET...]     (default: all four, see cross/env.sh)
# Output: dist/swandog-<target-triple>, plus a size table. Cross builds use target-cross/ so they
# never fight the host build in target/.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
"$CROSS_DIR/install-toolchain.sh" >/dev/null
use_debian_toolchain

targets=("$@"); ((${#targets[@]})) || targets=("${ALL_TARGETS[@]}")
check_targets "${targets[@]}"
TARGET_DIR=${SWANDOG_CROSS_TARGET_DIR:-$REPO_DIR/target-cross}
cd "$REPO_DIR"

target_args=()
for t in "${targets[@]}"; do
    target_args+=(--target "$t")
    # Size (see cross/README.md): with panic = "abort" unwind tables only serve backtraces, and
    # a stripped binary cannot symbolize those anyway (-24 KB .eh_frame on mipsel). Given with
    # --config so it joins the target's rustflags from .cargo/config.toml; the emulated tests
    # (debug, panic = unwind) need the tables and do not get it.
    flags='"-Cforce-unwind-tables=no"'
    # MIPS: position-dependent code drops the $gp/GOT set-up and $t9 indirect calls of the
    # default PIC (-57 KB, -10 %, on mipsel). Fine for a static, non-PIE executable.
    [[ $t == mips* ]] && flags+=',"-Crelocation-model=static"'
    target_args+=(--config "target.$t.rustflags=[$flags]")
done
# std's default build-std features include `backtrace` (gimli, addr2line, rustc-demangle,
# miniz_oxide: ~250 KB on mipsel, only to symbolize panic backtraces, which a stripped binary
# cannot do). Naming the features replaces that default; optimize_for_size picks std's
# smaller algorithm variants.
RELEASE_STD_FEATURES=(-Zbuild-std-features=optimize_for_size)
start=$SECONDS
# One cargo invocation for all targets: the long serial phases (LTO, codegen-units = 1) of one
# target overlap with the others' compiles on a small machine.
cargo zigbuild --release --locked --bin swandog "${target_args[@]}" "${BUILD_STD[@]}" "${RELEASE_STD_FEATURES[@]}" \
    --target-dir "$TARGET_DIR"
echo "build: $((SECONDS - start)) s for ${#targets[@]} target(s)"

mkdir -p dist
# Ceilings and the mipsel goal live in src/limits.rs (BUDGET_STRIPPED_*).
budget() { sed -n "s/^pub const $1: [a-z0-9]* = \([0-9_]*\);.*/\1/p" src/limits.rs | tr -d _; }
goal_kib=$(budget BUDGET_STRIPPED_GOAL_KIB_MIPSEL)
over=()
printf '\n%-34s %10s %8s  %s\n' target bytes KiB linkage
for t in "${targets[@]}"; do
    src=$TARGET_DIR/$t/release/swandog
    dst=dist/swandog-$t
    cp "$src" "$dst"
    # profile.release's strip = true makes zig's linker drop symbols but keep non-alloc sections
    # such as MIPS's .pdr (~90 KB of procedure descriptors nobody reads at run time).
    llvm-strip --strip-all "$dst"
    size=$(stat -c %s "$dst")
    link=$(file -b "$dst" | grep -o 'statically linked\|dynamically linked\|static-pie linked' || echo '?')
    note=""
    [[ $link == "dynamically linked" ]] && { echo "error: $dst is dynamically linked" >&2; exit 1; }
    if [[ $t == mipsel-* ]] && ((size > goal_kib * 1024)); then note="  (over the ${goal_kib} KiB goal)"; fi
    arch=${t%%-*} ceiling=$(budget "BUDGET_STRIPPED_BYTES_${arch^^}")
    if [[ -z $ceiling ]] || ((size > ceiling)); then
        note+="  OVER BUDGET (ceiling ${ceiling:-missing} B, src/limits.rs)"; over+=("$t")
    fi
    printf '%-34s %10d %8d  %s%s\n' "$t" "$size" "$((size / 1024))" "$link" "$note"
done
if ((${#over[@]})); then
    echo "error: stripped size over its ceiling: ${over[*]} (raise BUDGET_STRIPPED_BYTES_* in src/limits.rs only on purpose)" >&2
    exit 1
fi
