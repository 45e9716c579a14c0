#!/usr/bin/env bash
# Budget check of the binary that ships (CI runs it from scripts/test.sh); exits non-zero when a
# budget is exceeded. The long side-by-side benchmark for BENCHMARKS.md is cross/bench.sh.
#
#   cross/budget.sh [SECONDS]       (root; default 30 s measured after a 5 s warm-up)
#
#  1. builds the static musl host binary: cross/build.sh x86_64-unknown-linux-musl, which also
#     fails when a stripped size is over its ceiling (SWANDOG_BUDGET_SKIP_BUILD=1: use
#     dist/swandog-x86_64-unknown-linux-musl as is)
#  2. brings up the strongSwan lab (tests/lab/lab.sh, a per-run name) and runs
#     `swandog run --watch con1,con2_1,con2_2` against site a; over SECONDS it samples once a
#     second and fails when Anonymous (/proc/PID/smaps_rollup, highest sample) is over
#     BUDGET_ANON_KIB, VmHWM (peak RSS) over BUDGET_PEAK_RSS_KIB, or CPU (schedstat, all
#     threads) per hour of wall time over BUDGET_CPU_MS_PER_HOUR
#  3. checks every dist/swandog-<target> present against BUDGET_STRIPPED_BYTES_<ARCH>
# The budgets live in src/limits.rs (BUDGET_*), read from there by name.
set -euo pipefail
SECS=${1:-30}
case $SECS in '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;; esac
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
LABSH=$REPO/tests/lab/lab.sh
LAB=budget$$
WARMUP_S=5
[ "$(id -u)" = 0 ] || { echo "$0: must run as root (network namespaces)" >&2; exit 1; }

# budget NAME: the value of `pub const NAME: T = N;` in src/limits.rs.
budget() {
    local v
    v=$(sed -n "s/^pub const $1: [a-z0-9]* = \([0-9_]*\);.*/\1/p" src/limits.rs | tr -d _)
    [ -n "$v" ] || { echo "budget: no $1 in src/limits.rs" >&2; return 1; }
    echo "$v"
}
ANON_KIB=$(budget BUDGET_ANON_KIB)
ANON_GOAL_KIB=$(budget BUDGET_ANON_GOAL_KIB)
RSS_KIB=$(budget BUDGET_PEAK_RSS_KIB)
CPU_MS_H=$(budget BUDGET_CPU_MS_PER_HOUR)

failed=()
row() { # WHAT VALUE CEILING UNIT
    if (($2 > $3)); then
        failed+=("$1")
        printf '  %-44s %10s %s  ceiling %s  OVER BUDGET\n' "$1" "$2" "$4" "$3"
    else
        printf '  %-44s %10s %s  ceiling %s  ok\n' "$1" "$2" "$4" "$3"
    fi
}

BIN=dist/swandog-x86_64-unknown-linux-musl
if [ -z "${SWANDOG_BUDGET_SKIP_BUILD:-}" ]; then
    cross/build.sh x86_64-unknown-linux-musl >&2 || failed+=("cross/build.sh x86_64-unknown-linux-musl")
fi
[ -x "$BIN" ] || { echo "budget: no $BIN (cross/build.sh x86_64-unknown-linux-musl)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/swandog-budget.XXXXXX)
PID=
cleanup() {
    [ -z "$PID" ] || { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; }
    "$LABSH" "$LAB" down >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
# A copy, flushed: a just-written binary's page-cache pages are dirty and would count.
cp "$BIN" "$WORK/swandog"
sync

sched_ns() { local sum=0 t v; for t in /proc/"$1"/task/*/schedstat; do read -r v _ < "$t" || v=0; sum=$((sum + v)); done; echo "$sum"; }
kib() { awk -v k="$2" '$1 == k":" {print $2}' "$1"; }
now_us() { local t=$EPOCHREALTIME; echo "${t/./}"; }

"$LABSH" "$LAB" up >/dev/null
# The site's own swanctl.conf, as on a router (the lab's three tunnels), not the machine's
# /etc/swanctl/swanctl.conf (Debian's 16 KiB example of comments).
SITE_CONF=$(dirname "$("$LABSH" "$LAB" log a)")/swanctl/swanctl.conf
"$WORK/swandog" run --log stderr --watch con1,con2_1,con2_2 --vici "$("$LABSH" "$LAB" uri a)" \
    --swanctl-conf "$SITE_CONF" --status-file "$WORK/status" 2> "$WORK/log" &
PID=$!
sleep "$WARMUP_S"
grep -q watching "$WORK/log" || { cat "$WORK/log" >&2; echo "budget: swandog did not start watching" >&2; exit 1; }
t0=$(now_us); n0=$(sched_ns "$PID"); anon=0
for ((i = 0; i < SECS; i++)); do
    sleep 1
    a=$(kib "/proc/$PID/smaps_rollup" Anonymous)
    ((a > anon)) && anon=$a
done
t1=$(now_us); n1=$(sched_ns "$PID")
hwm=$(kib "/proc/$PID/status" VmHWM)
cpu_ms_h=$(( (n1 - n0) * 3600 / (t1 - t0) ))   # (ns / 1e6) * 3600 / (us / 1e6) = ms per hour

echo "budget: swandog run (static musl, $(stat -c %s "$BIN") B) watching 3 tunnels of lab $LAB for $SECS s; budgets from src/limits.rs"
row "anon KiB (smaps_rollup Anonymous, highest)" "$anon" "$ANON_KIB" KiB
[ "$anon" -le "$ANON_GOAL_KIB" ] || echo "  (the README's goal is $ANON_GOAL_KIB KiB: not met)"
row "peak RSS KiB (VmHWM)" "$hwm" "$RSS_KIB" KiB
row "CPU ms per hour (schedstat, all threads)" "$cpu_ms_h" "$CPU_MS_H" ms/h
for f in dist/swandog-*; do
    [ -e "$f" ] || continue
    t=${f#dist/swandog-}; arch=${t%%-*}
    row "stripped size $t" "$(stat -c %s "$f")" "$(budget "BUDGET_STRIPPED_BYTES_${arch^^}")" B
done
if ((${#failed[@]})); then
    printf 'budget: FAILED: %s\n' "${failed[@]}" >&2
    exit 1
fi
echo "budget: all within budget"
