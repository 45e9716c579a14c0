#!/usr/bin/env bash
# Records what an operator sees in `logread`, for docs/OPERATING.md: `swandog run --log syslog`
# (the init scripts' command line) under a private busybox syslogd, through a boot before charon,
# route-based discovery, a DPD failure on a quiet box, one under CPU load, re-initiation, a
# SIGHUP reload (good and broken), a proposal mismatch, a charon restart, SIGUSR1 and SIGTERM.
# Dev-only; needs root, busybox and the lab's packages.
#
#   tests/lab/oplog.sh [OUT_DIR]    (default /tmp/swandog-oplog; SWANDOG=binary to use)
#
# OUT_DIR gets logread.txt (busybox logread, verbatim), status.txt, check.txt, help.txt.
# syslogd runs in its own mount and IPC namespaces (private /dev/log, private logread buffer);
# swandog runs in a mount namespace that sees that /dev/log. The CPU burners are this script's
# own children, killed by pid. A quiet box is waited for (other work on the machine would make
# the "quiet" DPD failure load-correlated); QUIET_WAIT_S bounds the wait.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$(dirname "$HERE")")
OUT=${1:-/tmp/swandog-oplog}
NAME=oplog$$   # per run: never shares a lab with a test suite or another run
SWANDOG=${SWANDOG:-${CARGO_TARGET_DIR:-$REPO/target}/debug/swandog}
QUIET_WAIT_S=${QUIET_WAIT_S:-900}
LAB=$HERE/lab.sh
syslogd_pid= swandog_pid= burners=

lab() { "$LAB" "$NAME" "$@"; }
step() { echo "== $*" >&2; }
cleanup() {
    local p
    for p in $burners $swandog_pid $syslogd_pid; do kill "$p" 2>/dev/null || true; done
    for p in $burners $swandog_pid $syslogd_pid; do wait "$p" 2>/dev/null || true; done
    lab down >/dev/null 2>&1 || true
}
trap cleanup EXIT

[ -x "$SWANDOG" ] || { echo "oplog: no swandog at $SWANDOG (cargo build, or SWANDOG=...)" >&2; exit 1; }
rm -rf "$OUT"
mkdir -p "$OUT/dev"
lab down >/dev/null 2>&1 || true

logread() { nsenter -t "$syslogd_pid" -i busybox logread; }
count() { logread | grep -c -- "$1" || true; }
wait_log() { # PATTERN [MIN] [TIMEOUT_S]
    local min=${2:-1} t=$((${3:-60} * 10))
    while [ "$(count "$1")" -lt "$min" ]; do
        t=$((t - 1))
        [ "$t" -gt 0 ] || { echo "oplog: timeout waiting for '$1'" >&2; logread >&2; exit 1; }
        sleep 0.1
    done
}
# Whole-box busy % over 1 s and PSI some avg10, from /proc.
busy_pct() {
    local a b
    a=$(head -n 1 /proc/stat); sleep 1; b=$(head -n 1 /proc/stat)
    awk -v a="$a" -v b="$b" 'BEGIN {
        n = split(a, x); split(b, y); tot = 0; idle = 0
        for (i = 2; i <= n; i++) tot += y[i] - x[i]
        idle = (y[5] - x[5]) + (y[6] - x[6])
        printf "%d", tot ? 100 * (tot - idle) / tot : 0 }'
}
psi10() { sed -n 's/^some avg10=\([0-9]*\).*/\1/p' /proc/pressure/cpu 2>/dev/null || echo 0; }
# Waits for 15 quiet seconds in a row (well under the default 85 % busy / 40 % pressure).
wait_quiet() {
    local start=$SECONDS quiet=0
    while [ $quiet -lt 15 ]; do
        if [ "$(busy_pct)" -lt 50 ] && [ "$(psi10)" -lt 25 ]; then quiet=$((quiet + 1)); else quiet=0; fi
        if [ $((SECONDS - start)) -ge "$QUIET_WAIT_S" ]; then
            echo "oplog: the box never got quiet in $QUIET_WAIT_S s; no quiet-box DPD failure" >&2
            return 1
        fi
    done
    step "box quiet for 15 s (after $((SECONDS - start)) s)"
}
# busy_threshold_pct is 85 and the DPD window is short: burn every core.
burn() {
    local i
    for i in $(seq 1 "$(nproc)"); do
        sh -c 'while :; do :; done' &
        burners="$burners $!"
    done
}
unburn() {
    local p
    for p in $burners; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    burners=
}
break_until_dpd_failure() { # N-th DPD failure line to wait for
    lab break
    wait_log "con2: DPD failure" "$1" 40
    wait_log "re-initiation failed: no reply" "$1" 30
    lab heal
    wait_log "con2_1: back up" "$1" 60
    wait_log "con2_2: back up" "$1" 30
}

step "private busybox syslogd (logread buffer) with its own /dev/log"
unshare -m -i sh -c 'mount --bind "$0" /dev && exec busybox syslogd -n -C64' "$OUT/dev" &
syslogd_pid=$!
for _ in $(seq 50); do [ -S "$OUT/dev/log" ] && break; sleep 0.1; done

URI=$(lab uri a)
cat > "$OUT/swandog.conf" <<EOF
# /etc/swandog.conf for the capture
vici = $URI
status_file = $OUT/status
EOF
chmod 600 "$OUT/swandog.conf"

step "swandog starts before charon (as at boot)"
unshare -m sh -c 'mount --bind "$0" /dev && exec "$1" run --log syslog --config "$2"' \
    "$OUT/dev" "$SWANDOG" "$OUT/swandog.conf" &
swandog_pid=$!
wait_log "waiting for charon"
sleep 3

step "charon starts: connect, discover route-based children"
lab up >/dev/null
wait_log "con2_2: watching"
wait_log "con2_1: watching"

n=1
step "DPD failure on a quiet box"
if wait_quiet; then break_until_dpd_failure $n; n=$((n + 1)); fi

step "DPD failure under CPU load"
burn
sleep 12
break_until_dpd_failure $n
unburn

step "SIGHUP with a broken file, then a good one that also names con1"
echo "backoff_cap_ms = 2 min" >> "$OUT/swandog.conf"
kill -HUP "$swandog_pid"
wait_log "config not reloaded"
cat > "$OUT/swandog.conf" <<EOF
# /etc/swandog.conf for the capture
vici = $URI
status_file = $OUT/status
watch = con1, con2_1, con2_2
backoff_cap_ms = 20000
EOF
kill -HUP "$swandog_pid"
wait_log "config reloaded"
wait_log "con1: back up" 1 60

step "proposal mismatch: site b now wants another ESP proposal for con1"
lab mismatch b >/dev/null
lab terminate a con1 >/dev/null || true
wait_log "con1: re-initiation failed" 1 60
sleep 25
lab match b >/dev/null
wait_log "con1: back up" 2 90

step "charon restarts"
lab stop a >/dev/null
sleep 3
lab start a >/dev/null
wait_log "connected to charon" 2 60
sleep 8

step "SIGUSR1"
kill -USR1 "$swandog_pid"
wait_log "status: DPD failures"

"$SWANDOG" status --status-file "$OUT/status" > "$OUT/status.txt"
"$SWANDOG" check --config "$OUT/swandog.conf" > "$OUT/check.txt" 2>&1 || true
{ "$SWANDOG" --version; "$SWANDOG" --help; for c in run status sas check; do echo; "$SWANDOG" "$c" --help; done; } \
    > "$OUT/help.txt" 2>&1 || true

step "SIGTERM"
kill -TERM "$swandog_pid"
wait "$swandog_pid" || true
swandog_pid=
wait_log "stopping on signal"
logread > "$OUT/logread.txt"
step "done: $OUT/logread.txt"
cat "$OUT/logread.txt"
