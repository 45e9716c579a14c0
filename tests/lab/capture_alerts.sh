#!/usr/bin/env bash
# Capture strongSwan 6's `alert` events (and the log / updown frames beside them) from a real
# charon: DPD failure, an unreachable peer, ESP / IKE proposal, traffic selector and PSK
# mismatches. Dev-only; needs root and a strongSwan 6 build (scripts/strongswan6.sh).
#
#   SWANDOG_CHARON=... SWANDOG_SWANCTL=... tests/lab/capture_alerts.sh [OUT_DIR]
#       default OUT_DIR: tests/data/vici/<version>, decoded into tests/data/vici/frames-<version>.txt
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
NAME=${SWANDOG_CAPTURE_LAB:-vcap6}
LAB=$HERE/lab.sh
VC="python3 $HERE/vici_capture.py"
: "${SWANDOG_CHARON:?set SWANDOG_CHARON and SWANDOG_SWANCTL to a strongSwan 6 build (scripts/strongswan6.sh prints them)}"
: "${SWANDOG_SWANCTL:?}"
export SWANDOG_CHARON SWANDOG_SWANCTL
VERSION=$("$SWANDOG_CHARON" --version 2>&1 | awk '{print $NF; exit}')
OUT=${1:-$(dirname "$HERE")/data/vici/$VERSION}
DECODED=$(dirname "$OUT")/frames-$VERSION.txt
TMP=$(mktemp -d /tmp/swandog-capture6.XXXXXX)
RES=$TMP/out
LPID=

lab() { "$LAB" "$NAME" "$@"; }
step() { echo "== $*"; }
stop_listeners() {
    local p
    for p in $LPID; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    LPID=
}
cleanup() {
    stop_listeners
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
# listen PHASE: listeners on a (alert, updown, log) and b (alert) spooling to TMP/PHASE-{a,b}
listen() {
    $VC listen "$(lab uri a)" "$TMP/$1-a" alert ike-updown child-updown log &
    LPID=$!
    $VC listen "$(lab uri b)" "$TMP/$1-b" alert log &
    LPID="$LPID $!"
    for d in "$1-a" "$1-b"; do
        for _ in $(seq 1 50); do [ -e "$TMP/$d/ready" ] && break; sleep 0.1; done
        [ -e "$TMP/$d/ready" ] || { echo "capture: listener $d did not start" >&2; exit 1; }
    done
}
# pick_alert PHASE SITE TYPE OUT: the first alert of TYPE; no such alert is reported, not fatal.
pick_alert() {
    $VC pick "$TMP/$1-$2" "$RES/$4" --name alert "type=$3" ||
        echo "capture: NOTE no '$3' alert on site $2 in phase $1" >&2
}
# down_con1: no con1 IKE_SA on a (quietly).
down_con1() {
    $VC cmd "$(lab uri a)" "$TMP/term.bin" terminate ike=con1 timeout=5000 >/dev/null 2>&1 || true
    lab wait-installed a 2 10
}
# attempt PHASE: with listeners on, initiate con1 from a (expected to fail), then stop listening.
attempt() {
    listen "$1"
    $VC cmd "$(lab uri a)" "$RES/$1-initiate-response.bin" initiate child=con1 timeout=15000 \
        --stream control-log --spool "$TMP/$1-init" || true
    sleep 1
    stop_listeners
}

step "lab up ($("$SWANDOG_CHARON" --version 2>&1))"
lab up
A=$(lab uri a)
$VC cmd "$A" "$RES/version-response.bin" version
$VC register "$A" "$RES/event-confirm-alert.bin" alert
$VC cmd "$A" "$TMP/list-sas-response.bin" list-sas noblock=yes --stream list-sa --spool "$TMP/lsa"
$VC pick "$TMP/lsa" "$RES/list-sa-con2.bin" --name list-sa 'con2?'
$VC pick "$TMP/lsa" "$RES/list-sa-con1.bin" --name list-sa 'con1?'
$VC cmd "$A" "$TMP/list-conns-response.bin" list-conns --stream list-conn --spool "$TMP/lconn"
$VC pick "$TMP/lconn" "$RES/list-conn-con2.bin" --name list-conn 'con2?'

step "dpd: break -> DPD failure on both sites"
listen dpd
n_a=$(count_log a 'giving up after'); n_b=$(count_log b 'giving up after')
lab break
wait_log a 'giving up after' $((n_a + 2)) 30
wait_log b 'giving up after' $((n_b + 2)) 30
lab wait-installed a 0 10
lab wait-installed b 0 10
sleep 0.5
stop_listeners

step "unreachable: initiate con1 while broken"
attempt unreachable
lab heal
lab initiate a con2_1 >/dev/null
lab initiate a con2_2 >/dev/null
lab wait-installed a 2 20

# The IKE mismatch is made on the initiator a: b would otherwise answer IKE_SA_INIT with con2's
# IKE config (same addresses, the proposals a offers).
for kind_site in esp:b ike:a ts:b psk:b; do
    kind=${kind_site%:*}; site=${kind_site#*:}
    step "mismatch $kind on $site: initiate con1 from a"
    down_con1
    lab mismatch "$site" "$kind" >/dev/null
    attempt "$kind"
    lab match "$site" >/dev/null
done

step "pick frames"
pick_alert dpd a retransmit-send alert-retransmit-send.bin
pick_alert dpd a retransmit-send-timeout alert-retransmit-send-timeout.bin
pick_alert dpd b retransmit-send-timeout alert-retransmit-send-timeout-responder.bin
$VC pick "$TMP/dpd-a" "$RES/ike-updown-down-dpd.bin" --name ike-updown '!up' 'con2?'
$VC pick "$TMP/dpd-a" "$RES/log-giving-up.bin" --name log 'msg~giving up after'
$VC pick "$TMP/dpd-a" "$RES/log-retransmit.bin" --name log 'msg~retransmit 1 of request'
pick_alert unreachable a peer-init-unreachable alert-peer-init-unreachable.bin
pick_alert unreachable a retransmit-send-timeout alert-retransmit-send-timeout-init.bin
pick_alert esp b proposal-mismatch-child alert-proposal-mismatch-child-responder.bin
pick_alert esp a proposal-mismatch-child alert-proposal-mismatch-child.bin
pick_alert ike b proposal-mismatch-ike alert-proposal-mismatch-ike-responder.bin
pick_alert ike a proposal-mismatch-ike alert-proposal-mismatch-ike.bin
pick_alert ts b ts-mismatch alert-ts-mismatch-responder.bin
pick_alert ts a ts-mismatch alert-ts-mismatch.bin
pick_alert psk b peer-auth-failed alert-peer-auth-failed-responder.bin
pick_alert psk a local-auth-failed alert-local-auth-failed.bin
pick_alert esp a keep-on-child-sa-failure alert-keep-on-child-sa-failure.bin
$VC pick "$TMP/unreachable-a" "$RES/log-peer-not-responding.bin" --name log 'msg~peer not responding'

# What each site saw in each phase, in arrival order (packet-level log lines left out).
{
    for phase in dpd unreachable esp ike ts psk; do
        for site in a b; do
            echo "# ---- phase $phase, site $site"
            $VC seq "$TMP/$phase-$site" --skip 'sending packet' --skip 'received packet' \
                --skip 'parsed ' --skip 'generating ' --skip 'error writing to socket' \
                --skip 'retransmit ' --skip 'sending DPD' --skip 'received proposals' \
                --skip 'configured proposals' --skip 'scheduling ' --skip 'maximum IKE_SA' \
                --skip 'remote host is behind NAT' --skip 'selected proposal' | sed 's/^/#   /'
        done
    done
} > "$TMP/summary.txt"
cat "$TMP/summary.txt"

step "write $OUT and $DECODED"
cp "$RES"/*.bin "$OUT"/
{
    echo "# generated by tests/lab/capture_alerts.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "# $("$SWANDOG_CHARON" --version 2>&1 | head -n 1); $("$SWANDOG_SWANCTL" --help 2>&1 | head -n 1)"
    echo "# kernel $(uname -r) $(uname -m); ESP via kernel-libipsec"
    cat "$TMP/summary.txt"
    (cd "$OUT" && $VC dump $(ls ./*.bin))
} > "$DECODED"
ls -l "$OUT"
