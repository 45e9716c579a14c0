#!/usr/bin/env bash
# Soak: swandog run against the real two-site lab while the path breaks and heals at irregular
# intervals and a CPU burner comes and goes. Root only (the lab uses network namespaces).
#
#   tests/soak.sh [MINUTES]          default 10; the documented long run
#   SOAK_SECONDS=75 tests/soak.sh    the short run tests/soak.rs does in CI
#
# Breaks are short (0.5-1.5 s: inside the DPD window, so no DPD failure) or long (8-30 s: DPD gives
# up on both IKE_SAs, con1 and con2); a long break starts only once every watched child is
# INSTALLED again, so each one is exactly two DPD failures. The burner (one busy loop per CPU,
# niced so it loads the box without starving charon: SOAK_BURNER_NICE, default 19) is started and
# killed by the script, by pid. At the end every watched child must be INSTALLED, swandog must be
# the same process, its anonymous memory (Private_Dirty) flat from the first to the last minute,
# and its status counts must match what the script did. Prints the figures; exits non-zero on a
# failed check.
#
# Environment: SWANDOG_BIN (default: a release build), SOAK_LAB (lab name, default soak<pid>: two soaks at once never share a lab),
# SOAK_SEED (default: from the clock; printed, so a run can be repeated), SOAK_DIR (keep files).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
LAB_SH=$ROOT/tests/lab/lab.sh
LAB=${SOAK_LAB:-soak$$}
if [ -n "${SOAK_SECONDS:-}" ]; then
    DURATION=$SOAK_SECONDS
else
    DURATION=$(( ${1:-10} * 60 ))
fi
SEED=${SOAK_SEED:-$(( $(date +%s) % 32768 ))}
RANDOM=$SEED
NICE=${SOAK_BURNER_NICE:-19}
SHORT=$(( DURATION < 180 ))
WATCH="con1 con2_1 con2_2"

say() { printf 'soak %4ds: %s\n' "$(( $(date +%s) - T0 ))" "$*"; }
fail() { say "FAILED: $*"; FAILED=1; }
rand() { echo $(( $1 + RANDOM % ($2 - $1 + 1) )); }   # rand LO HI (integers)

if [ -z "${SWANDOG_BIN:-}" ]; then
    cargo build --release -q
    SWANDOG_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/swandog
fi
[ -x "$SWANDOG_BIN" ] || { echo "soak: no swandog binary at $SWANDOG_BIN" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "soak: must run as root (the lab needs network namespaces)" >&2; exit 2; }

DIR=${SOAK_DIR:-$(mktemp -d /tmp/swandog-soak.XXXXXX)}
mkdir -p "$DIR"
SWANDOG_PID=
MEM_PID=
BURNERS=()
FAILED=0
T0=$(date +%s)

burner_on() {
    local i
    [ ${#BURNERS[@]} -eq 0 ] || return 0
    for i in $(seq 1 "$(nproc)"); do
        nice -n "$NICE" sh -c 'while :; do :; done' &
        BURNERS+=($!)
    done
    echo "$(( $(date +%s) - T0 )) burner on" >> "$DIR/events"
}

burner_off() {
    local p
    [ ${#BURNERS[@]} -gt 0 ] || return 0
    for p in "${BURNERS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${BURNERS[@]}"; do wait "$p" 2>/dev/null || true; done
    BURNERS=()
    echo "$(( $(date +%s) - T0 )) burner off" >> "$DIR/events"
}

cleanup() {
    burner_off
    [ -z "$MEM_PID" ] || kill "$MEM_PID" 2>/dev/null || true
    [ -z "$SWANDOG_PID" ] || kill "$SWANDOG_PID" 2>/dev/null || true
    "$LAB_SH" "$LAB" down >/dev/null 2>&1 || true
    [ -n "${SOAK_DIR:-}" ] || [ "$FAILED" != 0 ] || rm -rf "$DIR"
}
trap cleanup EXIT

json() { head -n 1 "$DIR/status" 2>/dev/null || true; }
# num NAME: a counter of the status (the checks below first make sure each one is there).
num() { json | grep -o "\"$1\":[0-9]*" | head -n 1 | cut -d: -f2; }
child_up() { json | grep -q "{\"name\":\"$1\",\"ike\":\"[^\"]*\",\"state\":\"up\""; }
all_up() { local c; for c in $WATCH; do child_up "$c" || return 1; done; }
installed_all() { [ "$("$LAB_SH" "$LAB" installed a 2>/dev/null | sort | tr '\n' ' ')" = "con1 con2_1 con2_2 " ]; }
alive() { [ -n "$SWANDOG_PID" ] && kill -0 "$SWANDOG_PID" 2>/dev/null; }
# wait_until TIMEOUT_S COMMAND...: poll every 0.5 s
wait_until() {
    local end=$(( $(date +%s) + $1 )); shift
    until "$@"; do
        [ "$(date +%s)" -lt "$end" ] || return 1
        sleep 0.5
    done
}

say "seed $SEED, ${DURATION} s of faults, files in $DIR, swandog $SWANDOG_BIN"
"$LAB_SH" "$LAB" up > "$DIR/lab-up.out" 2>&1 || { cat "$DIR/lab-up.out"; exit 1; }
: > "$DIR/swandog.conf"
"$SWANDOG_BIN" run --config "$DIR/swandog.conf" --vici "$("$LAB_SH" "$LAB" uri a)" \
    --log stderr --status-file "$DIR/status" --watch con1,con2_1,con2_2 \
    --grace-ms 500 --backoff-min-ms 1000 --backoff-cap-ms 8000 --poll-interval-s 10 \
    2> "$DIR/swandog.log" &
SWANDOG_PID=$!
# Memory every 5 s: seconds since start, VmRSS KiB, Private_Dirty KiB.
(
    while kill -0 "$SWANDOG_PID" 2>/dev/null; do
        rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$SWANDOG_PID/status" 2>/dev/null || echo 0)
        dirty=$(awk '/^Private_Dirty:/ {print $2}' "/proc/$SWANDOG_PID/smaps_rollup" 2>/dev/null || echo 0)
        echo "$(( $(date +%s) - T0 )) ${rss:-0} ${dirty:-0}"
        sleep 5
    done
) > "$DIR/memory" &
MEM_PID=$!
wait_until 30 all_up || { fail "children not up at start"; cat "$DIR/swandog.log"; exit 1; }
say "swandog pid $SWANDOG_PID watching $WATCH, all up"

SHORT_BREAKS=0
LONG_BREAKS=0
LONG_BREAKS_LOADED=0
NOT_RESTORED=0
BURNER_STARTS=0
END=$(( $(date +%s) + DURATION ))
while [ "$(date +%s)" -lt "$END" ]; do
    alive || { fail "swandog died"; break; }
    if [ $(( RANDOM % 3 )) = 0 ]; then
        if [ ${#BURNERS[@]} -eq 0 ]; then burner_on; BURNER_STARTS=$((BURNER_STARTS + 1)); else burner_off; fi
    fi
    if [ $(( RANDOM % 2 )) = 0 ]; then
        ms=$(rand 500 1500)
        "$LAB_SH" "$LAB" break
        sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
        "$LAB_SH" "$LAB" heal
        SHORT_BREAKS=$((SHORT_BREAKS + 1))
        echo "$(( $(date +%s) - T0 )) short break ${ms} ms" >> "$DIR/events"
    else
        # A long break counts only from a fully restored state: then it is two DPD failures.
        if ! wait_until 90 installed_all; then
            NOT_RESTORED=$((NOT_RESTORED + 1))
            say "children not all INSTALLED after 90 s; skipping this long break"
            continue
        fi
        if [ "$SHORT" = 1 ]; then s=$(rand 8 12); else s=$(rand 8 30); fi
        "$LAB_SH" "$LAB" break
        sleep "$s"
        "$LAB_SH" "$LAB" heal
        LONG_BREAKS=$((LONG_BREAKS + 1))
        [ ${#BURNERS[@]} -eq 0 ] || LONG_BREAKS_LOADED=$((LONG_BREAKS_LOADED + 1))
        echo "$(( $(date +%s) - T0 )) long break ${s} s burner ${#BURNERS[@]}" >> "$DIR/events"
    fi
    if [ "$SHORT" = 1 ]; then sleep "$(rand 1 4)"; else sleep "$(rand 2 20)"; fi
done
burner_off
"$LAB_SH" "$LAB" heal
say "faults over: $SHORT_BREAKS short breaks, $LONG_BREAKS long ($LONG_BREAKS_LOADED with the burner), burner started $BURNER_STARTS times"

# ---- checks
T_END=$(( $(date +%s) - T0 ))
if wait_until 120 installed_all && wait_until 30 all_up; then
    say "every watched child INSTALLED (swanctl) and up (status) $(( $(date +%s) - T0 - T_END )) s after the last heal"
else
    fail "not restored: INSTALLED on a: $("$LAB_SH" "$LAB" installed a | tr '\n' ' '); status: $(json)"
fi
if alive; then say "swandog still pid $SWANDOG_PID"; else fail "swandog is not running any more"; fi
sleep 6   # one more memory sample after the recovery
STATUS=$(json)
for k in loaded_failures quiet_failures link_losses wire_faults; do
    [ -n "$(num "$k")" ] || { fail "no counter $k in the status: $STATUS"; exit 1; }
done
DPD_RECORDED=$(( $(num loaded_failures) + $(num quiet_failures) ))
DPD_EXPECTED=$(( 2 * LONG_BREAKS ))
DPD_LINES=$(grep -c "DPD failure" "$DIR/swandog.log" || true)
say "DPD failures: $DPD_RECORDED in status ($(num loaded_failures) under load, $(num quiet_failures) quiet), $DPD_LINES log lines; expected $DPD_EXPECTED (2 per long break)"
# Exact: each long break starts from a restored state and outlasts DPD (two failures); a short
# break (<= 1.5 s) is inside the DPD window and costs none.
[ "$DPD_RECORDED" = "$DPD_EXPECTED" ] || fail "DPD failures in status ($DPD_RECORDED) do not match the long breaks ($DPD_EXPECTED): see $DIR/events"
[ "$LONG_BREAKS" -ge 1 ] || fail "no long break happened: run longer"
# A long break skipped because the children were not back within 90 s is a failure to restore.
[ "$NOT_RESTORED" = 0 ] || fail "$NOT_RESTORED time(s) the children were not all INSTALLED 90 s after the last fault"
REINIT=$(echo "$STATUS" | grep -o '"reinitiations":[0-9]*' | cut -d: -f2 | awk '{s+=$1} END {print s+0}')
say "re-initiations by swandog: $REINIT; counters: $(echo "$STATUS" | grep -o '"counters":{[^}]*}')"
[ "$(num link_losses)" = 0 ] || fail "the VICI link was lost $(num link_losses) times"
[ "$(num wire_faults)" = 0 ] || fail "$(num wire_faults) wire faults from a real charon"

# Memory: Private_Dirty, peak of the first minute vs the last minute (a quarter of the run each
# when it is shorter than 4 minutes), after a 10 s start-up.
kill "$MEM_PID" 2>/dev/null || true; wait "$MEM_PID" 2>/dev/null || true; MEM_PID=
LAST_T=$(tail -n 1 "$DIR/memory" | cut -d' ' -f1)
WIN=$(( LAST_T / 4 < 60 ? LAST_T / 4 : 60 ))
read -r FIRST_RSS FIRST_DIRTY < <(awk -v a=10 -v b=$((10 + WIN)) '$1>=a && $1<b {if($2>r)r=$2; if($3>d)d=$3} END {print r+0, d+0}' "$DIR/memory")
read -r LAST_RSS LAST_DIRTY < <(awk -v a=$((LAST_T - WIN)) '$1>=a {if($2>r)r=$2; if($3>d)d=$3} END {print r+0, d+0}' "$DIR/memory")
CPU=$(awk '{printf "%.2f", ($14+$15)/100}' "/proc/$SWANDOG_PID/stat" 2>/dev/null || echo "?")
say "memory, peak of the first vs the last ${WIN} s: Private_Dirty $FIRST_DIRTY -> $LAST_DIRTY KiB, VmRSS $FIRST_RSS -> $LAST_RSS KiB; swandog CPU ${CPU} s in $(( $(date +%s) - T0 )) s"
[ "$LAST_DIRTY" -le $(( FIRST_DIRTY + 64 )) ] || fail "anonymous memory grew: $FIRST_DIRTY -> $LAST_DIRTY KiB"
say "log: $(wc -l < "$DIR/swandog.log") lines, $(grep -c WARN "$DIR/swandog.log" || true) warnings"

if [ "$FAILED" = 0 ]; then
    say "PASSED"
else
    say "see $DIR (kept)"; tail -n 40 "$DIR/swandog.log"
    exit 1
fi
