#!/usr/bin/env bash
# Benchmarks `swandog run` against a pfSense-style shell watchdog on this machine, side by side,
# at equal detection latency, and appends the figures to BENCHMARKS.md.
#
#   cross/bench.sh [SECONDS]        (root; default 60 s per measured period)
#
# What it does, in one run:
#   1. builds the host release binary (cargo build --release); also measures
#      dist/swandog-x86_64-unknown-linux-musl when present (cross/build.sh x86_64-unknown-linux-musl)
#   2. brings up the two-site strongSwan lab (tests/lab/lab.sh bench up: 3 tunnels)
#   3. runs `swandog run --log stderr --watch con1,con2_1,con2_2` on site a; after a warm-up,
#      measures for SECONDS: CPU (utime+stime from /proc/PID/stat, and schedstat in ns, all
#      threads) -> CPU seconds per hour; anonymous memory (Private_Dirty and Anonymous from
#      /proc/PID/smaps_rollup); peak RSS (VmHWM); own_cpu_percent from the status file
#   4. measures swandog's detection latency: `lab terminate b CHILD` (a peer delete) to
#      swandog's "CHILD: down" line, for con2_1, con2_2, con1 (swandog brings each back)
#   5. runs the shell watchdog (sh loop: swanctl --list-sas | grep -c INSTALLED, re-initiate what
#      is missing, sleep PERIOD) twice: PERIOD = swandog's median detection latency (equal
#      latency), then PERIOD = 1 s; measures its CPU including children (utime+stime+cutime+
#      cstime), peak RSS over it and all its children (/usr/bin/time -v), and its detection
#      latency the same way
#   6. checks --nice (field 19 of /proc/PID/stat) and prints the ratio, binary sizes, machine
#   7. appends everything to BENCHMARKS.md (date, machine, the command)
#
# Environment: SWANDOG_BENCH_LAB (lab name, default bench<pid>: runs at once never share a lab), SWANDOG_BENCH_NO_APPEND=1 (print only),
# SWANDOG_BENCH_SKIP_BUILD=1 (use target/release/swandog as is).
# CPU figures are noisy when other jobs run: the script prints the load average before and after.
# Rows over a budget (src/limits.rs BUDGET_*; they apply to the static build) say "over budget";
# a detection that times out is a failure, not a missing sample: the script then exits non-zero
# (after printing and appending its figures).
set -euo pipefail

SECS=${1:-60}
case $SECS in ''|*[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2;; esac
LAB=${SWANDOG_BENCH_LAB:-bench$$}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LABSH=$REPO/tests/lab/lab.sh
CHILDREN=(con1 con2_1 con2_2)
WARMUP_S=5
LATENCY_TRIES=3
HZ=$(getconf CLK_TCK)
# budget NAME: `pub const NAME: T = N;` from src/limits.rs, the one place budgets live.
budget() { sed -n "s/^pub const $1: [a-z0-9]* = \([0-9_]*\);.*/\1/p" "$REPO/src/limits.rs" | tr -d _ | grep .; }
BUDGET_ANON=$(budget BUDGET_ANON_KIB)
BUDGET_RSS=$(budget BUDGET_PEAK_RSS_KIB)
BUDGET_CPU_MS_H=$(budget BUDGET_CPU_MS_PER_HOUR)

[ "$(id -u)" = 0 ] || { echo "$0: must run as root (network namespaces)" >&2; exit 1; }
command -v /usr/bin/time >/dev/null || { echo "$0: /usr/bin/time missing (apt-get install time)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/swandog-bench.XXXXXX)
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    "$LABSH" "$LAB" down >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

now_us() { local t=$EPOCHREALTIME; echo "${t/./}"; }
load_avg() { cut -d' ' -f1-3 /proc/loadavg; }

# utime+stime (and cutime+cstime with "all") of PID in clock ticks.
ticks() {
    local f
    f=$(sed 's/.*) //' "/proc/$1/stat")
    # after "comm) ": field 3 is state, so utime is $12 here (field 14 overall)
    if [ "${2:-}" = all ]; then echo "$f" | awk '{print $12+$13+$14+$15}'
    else echo "$f" | awk '{print $12+$13}'; fi
}
# CPU time of every thread of PID in ns (schedstat: time on CPU).
sched_ns() {
    local sum=0 t v
    for t in /proc/"$1"/task/*/schedstat; do
        read -r v _ < "$t" || v=0
        sum=$((sum + v))
    done
    echo "$sum"
}
kib() { awk -v k="$2" '$1 == k":" {print $2}' "$1"; }
# Voluntary context switches of every thread of PID: how often it went to sleep (= wake-ups).
wakeups() { cat /proc/"$1"/task/*/status | awk '$1 == "voluntary_ctxt_switches:" {s += $2} END {print s}'; }

# A stderr reader that stamps each line with the wall clock in microseconds (bash builtin
# EPOCHREALTIME: no fork per line).
stamp() { while IFS= read -r line; do printf '%s %s\n' "${EPOCHREALTIME/./}" "$line"; done; }

# wait_line FILE PATTERN AFTER_US TIMEOUT_S: print the stamp of the first line matching PATTERN
# stamped after AFTER_US.
wait_line() {
    local file=$1 pat=$2 after=$3 end=$((SECONDS + $4)) got
    while [ $SECONDS -lt $end ]; do
        got=$(awk -v a="$after" -v p="$pat" '$1 > a && index($0, p) {print $1; exit}' "$file")
        [ -n "$got" ] && { echo "$got"; return 0; }
        sleep 0.02
    done
    return 1
}

# latency LOGFILE: the peer (site b) deletes each child in turn (one try per child, so no child
# flaps and goes quiet); prints the time from the delete command to the detector's
# "CHILD: down" line, in ms.
latency() {
    local log=$1 i t0 t1 child out=()
    for ((i = 0; i < LATENCY_TRIES; i++)); do
        child=${CHILDREN[$(( (i + 1) % ${#CHILDREN[@]} ))]}
        "$LABSH" "$LAB" wait-installed a 3 60 >/dev/null || echo "bench: not all 3 children came back" >&2
        sleep 1
        t0=$(now_us)
        "$LABSH" "$LAB" terminate b "$child" >/dev/null 2>&1
        if t1=$(wait_line "$log" "$child: down" "$t0" 30); then
            out+=($(( (t1 - t0) / 1000 )))
        else
            out+=(timeout)
        fi
    done
    "$LABSH" "$LAB" wait-installed a 3 60 >/dev/null || echo "bench: not all 3 children came back" >&2
    echo "${out[*]}"
}
median() { tr ' ' '\n' | grep -v timeout | sort -n | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print "n/a"}'; }
timeouts() { tr ' ' '\n' | grep -c timeout || true; }
# over_budget INDEX: what of swandog row INDEX is over its budget (static build only), or "".
over_budget() {
    local i=$1 out=()
    [[ ${LABELS[$i]} == *static* ]] || return 0
    ((R[$i,anon] > BUDGET_ANON)) && out+=("anon > $BUDGET_ANON KiB")
    ((R[$i,hwm] > BUDGET_RSS)) && out+=("peak RSS > $BUDGET_RSS KiB")
    awk -v c="${R[$i,cpu_s_h]}" -v b="$BUDGET_CPU_MS_H" 'BEGIN {exit !(c * 1000 > b)}' && out+=("CPU > $BUDGET_CPU_MS_H ms/h")
    ((${#out[@]})) && echo "**over budget: $(IFS=,; echo "${out[*]}")**"
    return 0
}

# ------------------------------------------------------------------ build and lab
cd "$REPO"
if [ -z "${SWANDOG_BENCH_SKIP_BUILD:-}" ]; then
    cargo build --release --locked --bin swandog >&2
fi
BINS=()
LABELS=()
# Copies, flushed to disk: a just-linked binary's page-cache pages are dirty and would show up
# in Private_Dirty until writeback.
cp target/release/swandog "$WORK/swandog-host"
BINS+=("$WORK/swandog-host"); LABELS+=("host x86_64 glibc (dynamic)")
if [ -x dist/swandog-x86_64-unknown-linux-musl ]; then
    cp dist/swandog-x86_64-unknown-linux-musl "$WORK/swandog-musl"
    BINS+=("$WORK/swandog-musl"); LABELS+=("x86_64 musl (static)")
fi
sync

LOAD_BEFORE=$(load_avg)
"$LABSH" "$LAB" up >/dev/null
URI=$("$LABSH" "$LAB" uri a)
CHARON_A=$("$LABSH" "$LAB" status | awk '$1 == "a" && $2 == "running" {print $4}')
STRIPPED=$WORK/swandog-stripped
cp "$WORK/swandog-host" "$STRIPPED"; strip "$STRIPPED" 2>/dev/null || true

# ------------------------------------------------------------------ swandog
declare -A R
measure_swandog() { # INDEX
    local i=$1 bin=${BINS[$1]} log=$WORK/swandog-$1.log status=$WORK/swandog-$1.status pid
    local t0 t1 n0 n1 c0 c1 ch0 ch1 w0 w1 lat
    "$bin" run --log stderr --watch "$(IFS=,; echo "${CHILDREN[*]}")" --vici "$URI" \
        --status-file "$status" 2> >(stamp > "$log") &
    pid=$!; PIDS+=("$pid")
    sleep "$WARMUP_S"
    grep -q "watching" "$log" || { cat "$log" >&2; echo "swandog did not start watching" >&2; exit 1; }
    t0=$(now_us); c0=$(ticks "$pid"); n0=$(sched_ns "$pid"); ch0=$(ticks "$CHARON_A"); w0=$(wakeups "$pid")
    sleep "$SECS"
    t1=$(now_us); c1=$(ticks "$pid"); n1=$(sched_ns "$pid"); ch1=$(ticks "$CHARON_A"); w1=$(wakeups "$pid")
    R[$i,wakeups]=$(awk -v w=$((w1 - w0)) -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", w / ((b - a) / 1e6)}')
    R[$i,events]=$(awk -v a="$t0" -v b="$t1" '$1 > a && $1 <= b' "$log" | wc -l)
    R[$i,wall_s]=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", (b - a) / 1e6}')
    R[$i,cpu_ticks]=$((c1 - c0))
    R[$i,cpu_s_h]=$(awk -v n=$((n1 - n0)) -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", n / 1e9 * 3600 / ((b - a) / 1e6)}')
    R[$i,cpu_s_h_ticks]=$(awk -v t=$((c1 - c0)) -v hz="$HZ" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", t / hz * 3600 / ((b - a) / 1e6)}')
    R[$i,charon_ticks]=$((ch1 - ch0))
    R[$i,private_dirty]=$(kib "/proc/$pid/smaps_rollup" Private_Dirty)
    R[$i,anon]=$(kib "/proc/$pid/smaps_rollup" Anonymous)
    R[$i,rss]=$(kib "/proc/$pid/status" VmRSS)
    R[$i,hwm]=$(kib "/proc/$pid/status" VmHWM)
    R[$i,threads]=$(kib "/proc/$pid/status" Threads)
    lat=$(latency "$log")
    # After the latency runs (> 60 s in, and they rewrite the status): a full budget window.
    R[$i,own_cpu]=$(head -n 1 "$status" | grep -o '"own_cpu_percent":[0-9.]*' | cut -d: -f2)
    R[$i,pace]=$(head -n 1 "$status" | grep -o '"pace":"[a-z-]*"' | cut -d'"' -f4)
    R[$i,latencies]=$lat
    R[$i,latency]=$(echo "$lat" | median)
    R[$i,hwm_after]=$(kib "/proc/$pid/status" VmHWM)
    R[$i,anon_after]=$(kib "/proc/$pid/smaps_rollup" Anonymous)
    kill "$pid"; wait "$pid" 2>/dev/null || true
}
for i in "${!BINS[@]}"; do measure_swandog "$i"; done

# --nice: field 19 of /proc/PID/stat is the niceness.
"${BINS[0]}" run --log stderr --watch con1 --vici "$URI" --status-file "$WORK/nice.status" \
    --nice 10 2>/dev/null &
NPID=$!; PIDS+=("$NPID")
sleep 1
NICE=$(sed 's/.*) //' "/proc/$NPID/stat" | awk '{print $17}')
kill "$NPID"; wait "$NPID" 2>/dev/null || true

# ------------------------------------------------------------------ shell watchdog
STRONGSWAN_CONF_A=$("$LABSH" "$LAB" log a | sed 's,charon.log$,strongswan.conf,')
declare -A S
# measure_shell INDEX PERIOD_S: the watchdog loop checking every PERIOD_S seconds.
measure_shell() {
    local i=$1 period=$2 dir=$WORK/shell-$1 tpid shpid t0 t1 c0 c1 ch0 ch1 lat
    mkdir -p "$dir"
    cat > "$dir/watchdog.sh" <<WATCHDOG
#!/bin/sh
# What pfSense-style keep-alive scripts do, at its cheapest: one swanctl and one grep per check;
# a missing child is re-initiated in the background (one initiate per child at a time).
STRONGSWAN_CONF=$STRONGSWAN_CONF_A
export STRONGSWAN_CONF
while [ ! -e "$dir/stop" ]; do
    n=\$(swanctl --list-sas --uri $URI 2>/dev/null | grep -c ', INSTALLED,')
    if [ "\$n" -lt ${#CHILDREN[@]} ]; then
        up=\$(swanctl --list-sas --uri $URI 2>/dev/null)
        for c in ${CHILDREN[*]}; do
            case "\$up" in
                *"  \$c: #"*", INSTALLED,"*) ;;
                *) echo "\$c: down"
                   if [ ! -e "$dir/init.\$c" ]; then
                       : > "$dir/init.\$c"
                       (swanctl --initiate --child "\$c" --uri $URI >/dev/null 2>&1; rm -f "$dir/init.\$c") &
                   fi ;;
            esac
        done
    fi
    sleep $period
done
wait
WATCHDOG
    /usr/bin/time -v -o "$dir/time" sh "$dir/watchdog.sh" > >(stamp > "$dir/log") 2>&1 &
    tpid=$!; PIDS+=("$tpid")
    sleep 1
    shpid=$(pgrep -P "$tpid" -x sh | head -n 1)
    sleep "$WARMUP_S"
    t0=$(now_us); c0=$(ticks "$shpid" all); ch0=$(ticks "$CHARON_A")
    sleep "$SECS"
    t1=$(now_us); c1=$(ticks "$shpid" all); ch1=$(ticks "$CHARON_A")
    S[$i,period]=$period
    S[$i,wall_s]=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", (b - a) / 1e6}')
    S[$i,ticks]=$((c1 - c0))
    S[$i,cpu_s_h]=$(awk -v t=$((c1 - c0)) -v hz="$HZ" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", t / hz * 3600 / ((b - a) / 1e6)}')
    S[$i,charon_ticks]=$((ch1 - ch0))
    lat=$(latency "$dir/log")
    S[$i,latencies]=$lat
    S[$i,latency]=$(echo "$lat" | median)
    touch "$dir/stop"
    wait "$tpid" 2>/dev/null || true
    S[$i,hwm]=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$dir/time")
}
# Equal latency: the loop's period is swandog's median detection latency. Then once a second,
# the floor the issue names (the shell then still detects far later than swandog).
LAT_MS=${R[0,latency]}
[ "$LAT_MS" = n/a ] && LAT_MS=1000
EQUAL_PERIOD=$(awk -v ms="$LAT_MS" 'BEGIN {p = ms / 1000; if (p < 0.01) p = 0.01; printf "%.3f", p}')
measure_shell 0 "$EQUAL_PERIOD"
measure_shell 1 1
LOAD_AFTER=$(load_avg)

# ------------------------------------------------------------------ report
ratio() { awk -v s="$1" -v d="$2" 'BEGIN {if (d > 0) printf "%.0f", s / d; else print "inf"}'; }
SIZE_HOST=$(stat -c %s "$STRIPPED")
CPU_MODEL=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
COMMIT=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')
CMD="cross/bench.sh $SECS"

report() {
    echo "## $DATE, commit $COMMIT"
    echo
    echo "Command: \`$CMD\` (root). Machine: $(nproc) CPUs, $CPU_MODEL, Linux $(uname -r) $(uname -m)."
    echo "Load average before / after: $LOAD_BEFORE / $LOAD_AFTER (other jobs make CPU figures noisy)."
    echo "Lab: tests/lab/lab.sh $LAB (strongSwan $(/usr/lib/ipsec/charon --version 2>/dev/null | awk '{print $NF}'), 3 tunnels: ${CHILDREN[*]}); measured period ${SECS} s after ${WARMUP_S} s warm-up."
    echo
    echo "| | CPU s/hour | CPU (ticks of 1/$HZ s) in period | charon CPU ticks in period | anon KiB (Private_Dirty / Anonymous) | peak RSS KiB (VmHWM) | detection latency ms (median; tries) |"
    echo "|---|---|---|---|---|---|---|"
    local i
    for i in "${!BINS[@]}"; do
        echo "| swandog run, ${LABELS[$i]} $(over_budget "$i") | ${R[$i,cpu_s_h]} (schedstat; ticks: ${R[$i,cpu_s_h_ticks]}) | ${R[$i,cpu_ticks]} in ${R[$i,wall_s]} s | ${R[$i,charon_ticks]} | ${R[$i,private_dirty]} / ${R[$i,anon]} | ${R[$i,hwm]} | ${R[$i,latency]} (${R[$i,latencies]})$(timed_out "${R[$i,latencies]}") |"
    done
    for i in 0 1; do
        echo "| shell watchdog (sh + swanctl --list-sas + grep, every ${S[$i,period]} s) | ${S[$i,cpu_s_h]} (incl. children) | ${S[$i,ticks]} in ${S[$i,wall_s]} s | ${S[$i,charon_ticks]} | - | ${S[$i,hwm]} (sh and all its children, /usr/bin/time -v) | ${S[$i,latency]} (${S[$i,latencies]})$(timed_out "${S[$i,latencies]}") |"
    done
    echo
    local r0; r0=$(ratio "${S[0,cpu_s_h]}" "${R[0,cpu_s_h]}")
    echo "* CPU ratio shell watchdog / swandog (host build) at equal latency (shell every ${S[0,period]} s = swandog's median detection latency): **${r0}x** (budget: >= 100x)$([[ $r0 != inf ]] && ((r0 < 100)) && echo " **over budget**")."
    echo "* Same with the shell checking once a second (it then detects $(ratio "${S[1,latency]}" "${R[0,latency]}")x later than swandog): **$(ratio "${S[1,cpu_s_h]}" "${R[0,cpu_s_h]}")x**."
    echo "* swandog's own view (status file, getrusage over its 60 s window): own_cpu_percent ${R[0,own_cpu]} %, pace ${R[0,pace]}."
    echo "* swandog threads: ${R[0,threads]}; thread wake-ups ${R[0,wakeups]}/s in the period (charon's VICI log events, load samples, timers; log lines written: ${R[0,events]}); after the latency runs: VmHWM ${R[0,hwm_after]} KiB, Anonymous ${R[0,anon_after]} KiB."
    echo "* --nice 10 applied: /proc/PID/stat field 19 = $NICE."
    echo "* Budgets (src/limits.rs; for the static build): anon <= $BUDGET_ANON KiB, peak RSS <= $BUDGET_RSS KiB, CPU <= $BUDGET_CPU_MS_H ms/hour and >= 100x below the shell watchdog."
    echo "* Stripped release binary (host x86_64 glibc): $SIZE_HOST bytes ($((SIZE_HOST / 1024)) KiB)."
    local f
    for f in "$REPO"/dist/swandog-*; do
        [ -e "$f" ] && echo "* $(basename "$f"): $(stat -c %s "$f") bytes ($(( $(stat -c %s "$f") / 1024 )) KiB)"
    done
    echo
}
# A detection that timed out fails the run (any row), and so does a static row over budget.
timed_out() { local n; n=$(echo "$1" | timeouts); ((n == 0)) || echo " **FAILED: $n detection timeout(s)**"; }
FAILURES=0
for i in "${!BINS[@]}"; do
    [ -z "$(timed_out "${R[$i,latencies]}")" ] || FAILURES=$((FAILURES + 1))
    [ -z "$(over_budget "$i")" ] || FAILURES=$((FAILURES + 1))
done
for i in 0 1; do [ -z "$(timed_out "${S[$i,latencies]}")" ] || FAILURES=$((FAILURES + 1)); done
report
if [ -z "${SWANDOG_BENCH_NO_APPEND:-}" ]; then
    if [ ! -e "$REPO/BENCHMARKS.md" ]; then
        printf '# Benchmarks\n\nMeasured by `cross/bench.sh [SECONDS]` (root; brings up the strongSwan lab, see the\nscript header for what is measured and how). Newest last.\n\n' > "$REPO/BENCHMARKS.md"
    fi
    report >> "$REPO/BENCHMARKS.md"
    echo "appended to BENCHMARKS.md" >&2
fi
if ((FAILURES)); then
    echo "bench: FAILED: $FAILURES row(s) with a detection timeout or over budget" >&2
    exit 1
fi
