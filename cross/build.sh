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
for t in "${targets[@]}"; do target_args+=(--target "$t"); done
start=$SECONDS
# One cargo invocation for all targets: the long serial phases (LTO, codegen-units = 1) of one
# target overlap with the others' compiles on a small machine.
cargo zigbuild --release --locked --bin swandog "${target_args[@]}" "${BUILD_STD[@]}" \
    --target-dir "$TARGET_DIR"
echo "build: $((SECONDS - start)) s for ${#targets[@]} target(s)"

mkdir -p dist
budget_kib=400   # issue 3: mipsel <= 400 KiB stripped
printf '\n%-34s %10s %8s  %s\n' target bytes KiB linkage
for t in "${targets[@]}"; do
    src=$TARGET_DIR/$t/release/swandog
    dst=dist/swandog-$t
    cp "$src" "$dst"
    # profile.release has strip = true; strip again is a no-op guard if someone turns it off.
    size=$(stat -c %s "$dst")
    link=$(file -b "$dst" | grep -o 'statically linked\|dynamically linked\|static-pie linked' || echo '?')
    note=""
    [[ $link == "dynamically linked" ]] && { echo "error: $dst is dynamically linked" >&2; exit 1; }
    if [[ $t == mipsel-* ]] && ((size > budget_kib * 1024)); then note="  (over the ${budget_kib} KiB budget)"; fi
    printf '%-34s %10d %8d  %s%s\n' "$t" "$size" "$((size / 1024))" "$link" "$note"
done
