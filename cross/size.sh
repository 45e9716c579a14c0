#!/usr/bin/env bash
# What makes the binary big: builds an unstripped release binary for one target (default
# mipsel-unknown-linux-musl) in target-cross-size/ and lists the biggest symbols and the total
# per crate (a `cargo bloat`-style view from llvm-nm; sizes are of .text/.rodata symbols).
#   cross/size.sh [TARGET] [extra cargo args...]     e.g. -Zbuild-std-features=optimize_for_size
# Environment: SIZE_TOP (default 40) symbols to list.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
"$CROSS_DIR/install-toolchain.sh" >/dev/null
use_debian_toolchain
t=${1:-mipsel-unknown-linux-musl}; shift || true
check_targets "$t"
cd "$REPO_DIR"
dir=${SWANDOG_SIZE_TARGET_DIR:-$REPO_DIR/target-cross-size}
CARGO_PROFILE_RELEASE_STRIP=false cargo zigbuild -q --release --locked --bin swandog --target "$t" \
    "${BUILD_STD[@]}" --target-dir "$dir" "$@"
bin=$dir/$t/release/swandog
NM=$(command -v llvm-nm || command -v llvm-nm-14 || echo nm)
stripped=$(mktemp); trap 'rm -f "$stripped"' EXIT
"$(dirname "$NM")/llvm-strip" -o "$stripped" "$bin" 2>/dev/null || cp "$bin" "$stripped"
echo "$t: $(stat -c %s "$stripped") bytes stripped"
llvm-size -A "$stripped" 2>/dev/null | awk '$2 > 1024 {print "  " $1, $2}'
"$NM" --size-sort -S -C --radix=d "$bin" | python3 -c '
import os, re, sys, collections
rows = []
for line in sys.stdin:
    parts = line.rstrip("\n").split(None, 3)
    if len(parts) < 4: continue
    _, size, kind, name = parts
    rows.append((int(size), kind, name))
def crate(name):
    n = re.sub(r"^<", "", name)
    n = re.sub(r"^(&|\*const |\*mut |dyn )", "", n)
    m = re.match(r"([A-Za-z_][A-Za-z0-9_]*)::", n)
    if m: return m.group(1)
    return "[C/musl/compiler-rt]" if not "::" in name else "[other]"
per = collections.Counter()
for size, kind, name in rows: per[crate(name)] += size
total = sum(per.values())
print(f"\nper crate (symbol bytes, total {total}):")
for c, s in per.most_common(25): print(f"  {s:8d}  {100*s/total:5.1f}%  {c}")
top = int(os.environ.get("SIZE_TOP", "40"))
print(f"\nbiggest {top} symbols:")
for size, kind, name in sorted(rows, reverse=True)[:top]: print(f"  {size:8d} {kind} {name[:150]}")
'
