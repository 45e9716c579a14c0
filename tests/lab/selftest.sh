#!/usr/bin/env bash
# Self-test of tests/lab/lab.sh against a real charon: exercises every lab command and prints
# timings. Usage: tests/lab/selftest.sh [NAME]   (default NAME: st<4 digits of pid>)
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
LAB=$HERE/lab.sh
NAME=${1:-st$(printf '%04d' $(( $$ % 10000 )))}
PASS=0

lab() { "$LAB" "$NAME" "$@"; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
step() { echo "== $*"; }
ok() { PASS=$((PASS + 1)); echo "   ok: $*"; }
fail() {
    echo "FAIL: $*" >&2
    for s in a b; do
        f=$(lab log $s)
        [ -f "$f" ] && { echo "---- tail of site $s log ($f)" >&2; tail -n 30 "$f" >&2; }
    done
    exit 1
}
count_in_log() { grep -c -- "$2" "$(lab log "$1")" || true; }

# wait_log SITE PATTERN MIN_COUNT TIMEOUT_S: wait until PATTERN occurs at least MIN_COUNT times.
wait_log() {
    local end=$(( $(now_ms) + $4 * 1000 ))
    while [ "$(count_in_log "$1" "$2")" -lt "$3" ]; do
        [ "$(now_ms)" -lt "$end" ] || return 1
        sleep 0.1
    done
}

expect_installed() { # SITE N TIMEOUT
    lab wait-installed "$1" "$2" "$3" || fail "site $1: expected $2 INSTALLED children"
    ok "site $1 has $2 INSTALLED children: $(lab installed "$1" | sort | tr '\n' ' ')"
}

initiate_all() {
    for c in con1 con2_1 con2_2; do lab initiate a "$c" >/dev/null || fail "initiate a $c"; done
}

trap 'echo "== cleanup"; "$LAB" "$NAME" down' EXIT

T_START=$(now_ms)
step "up (lab $NAME)"
t0=$(now_ms); lab up; T_UP=$(( $(now_ms) - t0 ))
expect_installed a 3 20
expect_installed b 3 20

step "ping 203.0.113.1 from 198.51.100.1 through the tunnel"
ip netns exec "sd-$NAME-a" ping -c 3 -i 0.2 -W 2 -I 198.51.100.1 203.0.113.1 >/dev/null ||
    fail "ping through con1"
ok "ping through con1"
for h in 65 129; do
    ip netns exec "sd-$NAME-a" ping -c 1 -W 2 -I "198.51.100.$h" "203.0.113.$h" >/dev/null ||
        fail "ping 203.0.113.$h"
done
ok "ping through con2_1 and con2_2"

step "break: drop IKE/NAT-T on site a, wait for DPD give-up"
n_a=$(count_in_log a 'giving up after')
n_b=$(count_in_log b 'giving up after')
t0=$(now_ms)
lab break
# two IKE_SAs (con1, con2) each give up
wait_log a 'giving up after' $((n_a + 2)) 20 || fail "site a: no DPD give-up within 20 s"
T_DPD_A=$(( $(now_ms) - t0 ))
ok "site a gave up after $T_DPD_A ms: $(grep 'giving up after' "$(lab log a)" | tail -n 1 | cut -c21-)"
lab wait-installed a 0 10 || fail "site a children not gone after DPD"
ok "site a children gone"
wait_log b 'giving up after' $((n_b + 2)) 20 || fail "site b: no DPD give-up within 20 s"
T_DPD_B=$(( $(now_ms) - t0 ))
lab wait-installed b 0 10 || fail "site b children not gone after DPD"
ok "site b gave up after $T_DPD_B ms, children gone"

step "heal, initiate all from a"
lab heal
t0=$(now_ms); initiate_all; T_REINIT=$(( $(now_ms) - t0 ))
expect_installed a 3 20
expect_installed b 3 20

step "stop b / start b"
t0=$(now_ms); lab stop b; T_STOP=$(( $(now_ms) - t0 ))
ok "site b stopped in $T_STOP ms"
lab wait-installed a 0 10 || fail "site a kept children after site b stopped (peer delete)"
ok "site a children gone (peer sent delete)"
t0=$(now_ms); lab start b; T_START_B=$(( $(now_ms) - t0 ))
ok "site b started in $T_START_B ms"
lab wait-installed b 0 1 || fail "start must not initiate anything"
initiate_all
expect_installed a 3 20
expect_installed b 3 20

step "kill a / start a"
lab kill a
[ -S "$(lab uri a | sed 's|^unix://||')" ] && ok "stale socket left behind after kill"
n_b=$(count_in_log b 'giving up after')
t0=$(now_ms)
wait_log b 'giving up after' $((n_b + 2)) 20 || fail "site b: no DPD give-up after site a was killed"
T_DPD_KILL=$(( $(now_ms) - t0 ))
lab wait-installed b 0 10 || fail "site b children not gone"
ok "site b declared the dead peer after $T_DPD_KILL ms"
lab start a
ok "site a restarted over the stale socket"
initiate_all
expect_installed a 3 20
expect_installed b 3 20

step "pause b / resume b"
lab pause b
if SW_T=$(timeout 2 swanctl --stats --uri "$(lab uri b)" 2>&1); then
    fail "paused charon still answered VICI: $SW_T"
fi
ok "paused charon does not answer VICI (2 s timeout)"
lab resume b
expect_installed b 3 10
expect_installed a 3 10

step "mismatch b: initiate a con1 must fail"
lab mismatch b >/dev/null
lab terminate a con1 >/dev/null || fail "terminate a con1"
expect_installed a 2 10
n_np=$(count_in_log a NO_PROPOSAL_CHOSEN)
if lab initiate a con1 >/tmp/swandog-selftest-$NAME.out 2>&1; then
    cat /tmp/swandog-selftest-$NAME.out; rm -f /tmp/swandog-selftest-$NAME.out
    fail "initiate con1 succeeded despite mismatch"
fi
grep -E 'NO_PROPOSAL_CHOSEN|failed' /tmp/swandog-selftest-$NAME.out | tail -n 2 | sed 's/^/   | /'
rm -f /tmp/swandog-selftest-$NAME.out
[ "$(count_in_log a NO_PROPOSAL_CHOSEN)" -gt "$n_np" ] || fail "no NO_PROPOSAL_CHOSEN in site a log"
ok "initiate a con1 failed with NO_PROPOSAL_CHOSEN"

step "match b: initiate a con1 works again"
lab match b >/dev/null
lab initiate a con1 >/dev/null || fail "initiate a con1 after match"
expect_installed a 3 10
expect_installed b 3 10

step "down"
t0=$(now_ms); lab down; T_DOWN=$(( $(now_ms) - t0 ))
trap - EXIT
ip netns list | grep -q "^sd-$NAME-" && fail "namespaces left behind"
[ ! -e "${SWANDOG_LAB_DIR:-/tmp/swandog-lab}/$NAME" ] || fail "run dir left behind"
ok "namespaces and run dir removed"

echo
echo "PASS ($PASS checks, $(( $(now_ms) - T_START )) ms total)"
echo "timings: up=${T_UP}ms dpd_giveup_a=${T_DPD_A}ms dpd_giveup_b=${T_DPD_B}ms" \
     "reinit_3_children=${T_REINIT}ms stop_b=${T_STOP}ms start_b=${T_START_B}ms" \
     "dpd_after_kill=${T_DPD_KILL}ms down=${T_DOWN}ms"
