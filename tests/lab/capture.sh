#!/usr/bin/env bash
# Reproduce tests/data/vici/*.bin from scratch: bring up a lab, drive it through DPD failure,
# peer delete, local terminate, a duplicate and a failing initiate, and save real VICI segments
# seen on site a's socket. Dev-only; needs root and strongSwan (see STRONGSWAN.md).
#
#   tests/lab/capture.sh [OUT_DIR]      (default: tests/data/vici next to this script)
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-$(dirname "$HERE")/data/vici}
NAME=${SWANDOG_CAPTURE_LAB:-vcap}
LAB=$HERE/lab.sh
VC="python3 $HERE/vici_capture.py"
TMP=$(mktemp -d /tmp/swandog-capture.XXXXXX)
RES=$TMP/out
LPID=

lab() { "$LAB" "$NAME" "$@"; }
step() { echo "== $*"; }
cleanup() {
    local p
    for p in $LPID; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    "$LAB" "$NAME" down || true
    if [ -n "${SWANDOG_CAPTURE_KEEP:-}" ]; then echo "capture: kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
mkdir -p "$RES" "$OUT"

count_log() { grep -c -- "$2" "$(lab log "$1")" || true; }
wait_log() { # SITE PATTERN MIN TIMEOUT_S
    local i
    for i in $(seq 1 $(($4 * 10))); do
        [ "$(count_log "$1" "$2")" -ge "$3" ] && return 0
        sleep 0.1
    done
    echo "capture: timeout waiting for '$2' in site $1 log" >&2
    return 1
}

step "lab up"
lab up
A=$(lab uri a)

step "queries with all three children up"
$VC cmd "$A" "$RES/version-response.bin" version
$VC cmd "$A" "$RES/stats-response.bin" stats
$VC cmd "$A" "$RES/list-sas-response.bin" list-sas noblock=yes --stream list-sa --spool "$TMP/lsa"
cp "$TMP/lsa/00000-confirm.bin" "$RES/event-confirm.bin"
$VC pick "$TMP/lsa" "$RES/list-sa-con2.bin" --name list-sa 'con2?'
$VC pick "$TMP/lsa" "$RES/list-sa-con1.bin" --name list-sa 'con1?'
$VC cmd "$A" "$RES/list-conns-response.bin" list-conns --stream list-conn --spool "$TMP/lconn"
$VC pick "$TMP/lconn" "$RES/list-conn-con1.bin" --name list-conn 'con1?'
$VC pick "$TMP/lconn" "$RES/list-conn-con2.bin" --name list-conn 'con2?'
$VC register "$A" "$RES/event-unknown.bin" swandog-bogus-event
$VC cmd "$A" "$RES/cmd-unknown.bin" swandog-bogus-command

step "event listener on site a"
$VC listen "$A" "$TMP/ev" ike-updown child-updown log &
LPID=$!
$VC listen "$(lab uri b)" "$TMP/evb" ike-updown &
LPID="$LPID $!"
for d in ev evb; do
    for _ in $(seq 1 50); do [ -e "$TMP/$d/ready" ] && break; sleep 0.1; done
    [ -e "$TMP/$d/ready" ] || { echo "capture: listener $d did not start" >&2; exit 1; }
done

step "break -> DPD failure on both sites"
n_a=$(count_log a 'giving up after'); n_b=$(count_log b 'giving up after')
lab break
wait_log a 'giving up after' $((n_a + 2)) 20
wait_log b 'giving up after' $((n_b + 2)) 20
lab wait-installed a 0 10
lab wait-installed b 0 10

step "initiate con1 while broken (peer not responding)"
$VC cmd "$A" "$RES/initiate-response-fail-unreachable.bin" initiate child=con1 timeout=15000 \
    --stream control-log --spool "$TMP/init-unreach"
lab heal

step "initiate con1 (success, with control-log), con2_1, con2_2"
$VC cmd "$A" "$RES/initiate-response-success.bin" initiate child=con1 timeout=15000 \
    --stream control-log --spool "$TMP/init-ok"
lab initiate a con2_1 >/dev/null
lab initiate a con2_2 >/dev/null
lab wait-installed a 3 20
lab wait-installed b 3 20

step "initiate con1 again (duplicate)"
$VC cmd "$A" "$RES/initiate-response-duplicate.bin" initiate child=con1 timeout=15000 \
    --stream control-log --spool "$TMP/init-dup"
lab wait-installed a 3 10

step "child down: local terminate of con2_2 on a, peer terminate of con2_1 on b"
$VC cmd "$A" "$RES/terminate-child-response.bin" terminate child=con2_2 timeout=15000 \
    --stream control-log --spool "$TMP/term-child"
lab wait-installed a 2 10
lab terminate b con2_1 >/dev/null
lab wait-installed a 1 10

step "IKE down by peer delete: terminate IKE con2 on b"
lab initiate a con2_1 >/dev/null
lab initiate a con2_2 >/dev/null
lab wait-installed a 3 10
$VC cmd "$(lab uri b)" "$TMP/terminate-ike-on-b.bin" terminate ike=con2 timeout=15000
lab wait-installed a 1 10

step "IKE down by local terminate: terminate IKE con1 on a"
$VC cmd "$A" "$RES/terminate-ike-response.bin" terminate ike=con1 timeout=15000 \
    --stream control-log --spool "$TMP/term-ike"
lab wait-installed a 0 10

step "mismatch b: initiate con1 fails"
lab mismatch b >/dev/null
$VC cmd "$A" "$RES/initiate-response-fail.bin" initiate child=con1 timeout=15000 \
    --stream control-log --spool "$TMP/init-fail"
lab match b >/dev/null

step "mobike on both sites, fresh con2, break -> DPD failure runs as IKE_MOBIKE on a"
lab mobike a yes >/dev/null
lab mobike b yes >/dev/null
$VC cmd "$A" "$TMP/terminate-ike-con1-again.bin" terminate ike=con1 timeout=15000
lab initiate a con2_1 >/dev/null
lab wait-installed a 1 10
lab wait-installed b 1 10
n_a=$(count_log a 'giving up after'); n_b=$(count_log b 'giving up after')
lab break
wait_log a 'giving up after' $((n_a + 1)) 20
wait_log b 'giving up after' $((n_b + 1)) 20
lab wait-installed a 0 10
lab wait-installed b 0 10
lab heal
sleep 0.5

step "stop listeners, pick events"
for p in $LPID; do kill "$p"; wait "$p" 2>/dev/null || true; done; LPID=
EV=$TMP/ev
$VC pick "$EV" "$RES/ike-updown-down-dpd.bin" --name ike-updown '!up' 'con2.tasks-active~IKE_DPD'
$VC pick "$EV" "$RES/ike-updown-down-dpd-mobike.bin" --name ike-updown '!up' 'con2.tasks-active~IKE_MOBIKE'
$VC pick "$TMP/evb" "$RES/ike-updown-down-dpd-responder-mobike.bin" --name ike-updown --last '!up' \
    'con2.tasks-active?'
$VC pick "$EV" "$RES/ike-updown-down-peer-delete.bin" --name ike-updown '!up' 'con2.tasks-passive~IKE_DELETE'
$VC pick "$EV" "$RES/ike-updown-down-local.bin" --name ike-updown '!up' 'con1.tasks-active~IKE_DELETE'
$VC pick "$EV" "$RES/ike-updown-up.bin" --name ike-updown 'up=yes' 'con2?'
$VC pick "$EV" "$RES/child-updown-up.bin" --name child-updown 'up=yes' 'con2.child-sas.*.name=con2_2'
$VC pick "$EV" "$RES/child-updown-down-dpd.bin" --name child-updown '!up' 'con2.tasks-active~IKE_DPD'
$VC pick "$EV" "$RES/child-updown-down-local.bin" --name child-updown '!up' \
    'con2.tasks-active~CHILD_DELETE' 'con2.child-sas.*.name=con2_2'
$VC pick "$EV" "$RES/child-updown-down-peer-delete.bin" --name child-updown '!up' \
    'con2.tasks-passive~CHILD_DELETE' 'con2.child-sas.*.name=con2_1'
$VC pick "$EV" "$RES/child-updown-down-peer-delete-ike.bin" --name child-updown '!up' \
    'con2.tasks-passive~IKE_DELETE'
$VC pick "$EV" "$RES/log-giving-up.bin" --name log 'msg~giving up after'
$VC pick "$EV" "$RES/log-dpd-request.bin" --name log 'msg~sending DPD request'
$VC pick "$EV" "$RES/log-retransmit.bin" --name log 'msg~retransmit 1 of request'
$VC pick "$EV" "$RES/log-no-proposal.bin" --name log 'msg~NO_PROPOSAL_CHOSEN'
$VC pick "$TMP/init-ok" "$RES/control-log-initiate-first.bin" --name control-log
$VC pick "$TMP/init-ok" "$RES/control-log-ike-established.bin" --name control-log 'msg~] established between'
$VC pick "$TMP/init-ok" "$RES/control-log-child-established.bin" --name control-log 'msg~} established with SPIs'
$VC pick "$TMP/init-fail" "$RES/control-log-no-proposal.bin" --name control-log 'msg~NO_PROPOSAL_CHOSEN'
$VC pick "$TMP/init-fail" "$RES/control-log-child-failed.bin" --name control-log 'msg~failed to establish CHILD_SA'
$VC pick "$TMP/init-unreach" "$RES/control-log-peer-not-responding.bin" --name control-log \
    'msg~peer not responding'
$VC pick "$EV" "$RES/log-peer-not-responding.bin" --name log 'msg~peer not responding'
$VC pick "$TMP/init-dup" "$RES/control-log-duplicate.bin" --name control-log --last || true

step "write $OUT"
cp "$RES"/*.bin "$OUT"/
{
    echo "# generated by tests/lab/capture.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "# $(/usr/lib/ipsec/charon --version 2>&1 | head -n 1); $(swanctl --version 2>&1 | grep -i 'strongswan' | head -n 1)"
    echo "# kernel $(uname -r) $(uname -m); ESP via kernel-libipsec"
    (cd "$RES" && $VC dump $(ls *.bin))
} > "$OUT/decoded.txt"
ls -l "$OUT"
