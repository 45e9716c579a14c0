#!/usr/bin/env bash
# A real two-site strongSwan lab in network namespaces (dev/test only).
#
#   tests/lab/lab.sh NAME COMMAND [ARGS]
#
# NAME      short lab id ([a-z0-9], <= 12 chars); several labs can run at once. The Rust tests
#           add a per-run suffix (tests/common/mod.rs), so two suites never share a lab.
#           Namespaces sd-NAME-a / sd-NAME-b, run dir ${SWANDOG_LAB_DIR:-/tmp/swandog-lab}/NAME.
# COMMANDS  up | down | break | heal | stop SITE | start SITE | kill SITE | pause SITE |
#           resume SITE | initiate SITE CHILD | terminate SITE CHILD |
#           mismatch SITE [esp|ike|ts|psk] | match SITE | mobike SITE yes|no | uri SITE | log SITE | sas SITE | installed SITE |
#           wait-installed SITE N TIMEOUT_S | status |
#           extra SITE N        a connection con3 with N route-based children con3_1..con3_N
#                               (if_id 100+i, one /32 pair each; N <= 60), loaded now; 0 = none
#           drop SITE CHILD     CHILD removed from swanctl.conf and the config reloaded (as an
#                               operator's edit + swanctl --load-all); its SA is left alone
#           noconns SITE        no connections in swanctl.conf (charon up, configs not loaded yet,
#                               as on a router at boot), reloaded now; `conns SITE` undoes it and
#                               undoes every `drop`
#
# Sites: a = 192.0.2.1, inner 198.51.100.0/24 (hosts .1 .65 .129 on lo)
#        b = 192.0.2.2, inner 203.0.113.0/24  (hosts .1 .65 .129 on lo)
# Connections (IKEv2, PSK): con1 {con1: policy-based}, con2 {con2_1: if_id 42, con2_2: if_id 43}.
# charon runs with kernel-libipsec (userspace ESP on a TUN device), since this kernel has no
# kernel ESP / VTI / XFRM interfaces. DPD: 2 s delay, clear; retransmits 2 x 1 s.
# mismatch SITE KIND makes con1 of SITE refuse the peer: esp (default) / ike: an ESP / IKE proposal
# the peer does not offer; ts: con1's local_ts moved to 192.0.2.128/26, which the peer does not ask
# for; psk: a different pre-shared key (for every connection's new IKE_SAs). match SITE undoes all.
# mobike = no by default (pfSense's default); `mobike SITE yes` turns it on for new IKE_SAs
# (then an initiator's DPD runs as the IKE_MOBIKE task, not IKE_DPD).
#
# strongSwan: Debian's 5.9.8 by default; SWANDOG_CHARON / SWANDOG_SWANCTL pick another build for
# both sites (scripts/strongswan6.sh prints them for 6.x), SWANDOG_CHARON_B for site b only (a
# mixed pair). Plugins are loaded from each build's own plugin dir (those it lacks are left out of
# `load`: a 6.x built with openssl has no aes/sha1/sha2/hmac/gmp plugins).
#
# The lab only ever signals processes it started itself: the pid recorded in RUN/SITE/charon.pid,
# and only if that process still carries this site's STRONGSWAN_CONF in its environment.
set -eu

PROG=${0##*/}
CHARON=${SWANDOG_CHARON:-/usr/lib/ipsec/charon}
CHARON_B=${SWANDOG_CHARON_B:-$CHARON}
SWANCTL=${SWANDOG_SWANCTL:-swanctl}
LAB_ROOT=${SWANDOG_LAB_DIR:-/tmp/swandog-lab}
PSK="swandog-lab-test-secret-not-for-production"
IKE_PROPOSAL="aes128-sha256-modp2048"
ESP_PROPOSAL="aes128-sha256"
ESP_MISMATCH="aes256-sha512"
IKE_MISMATCH="aes256-sha512-modp3072"
UP_TIMEOUT=${SWANDOG_LAB_UP_TIMEOUT:-20}
INIT_TIMEOUT=${SWANDOG_LAB_INIT_TIMEOUT:-15}

die() { echo "$PROG: error: $*" >&2; exit 1; }
note() { echo "$PROG: $*" >&2; }

usage() {
    sed -n '2,/^set -eu/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//' >&2
    exit 2
}

[ $# -ge 2 ] || usage
NAME=$1; CMD=$2; shift 2
case $NAME in
    ""|*[!a-z0-9]*) die "lab name '$NAME' must be 1-12 chars of [a-z0-9]";;
esac
[ ${#NAME} -le 12 ] || die "lab name '$NAME' is longer than 12 chars"
[ "$(id -u)" = 0 ] || die "must run as root (network namespaces)"

RUN=$LAB_ROOT/$NAME
case $RUN in /*) ;; *) die "SWANDOG_LAB_DIR must be an absolute path";; esac

ns() { echo "sd-$NAME-$1"; }
sdir() { echo "$RUN/$1"; }
uri() { echo "unix://$RUN/$1/charon.vici"; }
conf() { echo "$RUN/$1/strongswan.conf"; }

check_site() {
    case ${1:-} in a|b) ;; *) die "SITE must be 'a' or 'b', got '${1:-}'";; esac
}

# swanctl against one site, bounded so a paused charon cannot hang us forever.
sw() {
    local site=$1; shift
    STRONGSWAN_CONF=$(conf "$site") SWANCTL_DIR="$(sdir "$site")/swanctl" \
        timeout "${SW_TIMEOUT:-30}" "$SWANCTL" "$@" --uri "$(uri "$site")"
}

# ---------------------------------------------------------------- config files

# Per-site knobs live in RUN/SITE/lab.state (ESP1 / IKE1 = con1's ESP / IKE proposal, TS1 = con1's
# local_ts, PSK1 = the secret, MOBIKE = yes|no).
set_state() { # SITE KEY VALUE
    local f
    f=$(sdir "$1")/lab.state
    touch "$f"
    { grep -v "^$2=" "$f" || true; echo "$2=$3"; } > "$f.tmp"
    mv "$f.tmp" "$f"
}
get_state() { # SITE KEY DEFAULT
    local v
    v=$(sed -n "s/^$2=//p" "$(sdir "$1")/lab.state" 2>/dev/null | tail -n 1)
    echo "${v:-$3}"
}

# site_charon SITE: the charon binary of a site.
site_charon() { if [ "$1" = b ]; then echo "$CHARON_B"; else echo "$CHARON"; fi; }

# plugin_dir CHARON: where that charon's plugins are (Debian: beside it in /usr/lib/ipsec;
# a --prefix build: PREFIX/libexec/ipsec/charon with PREFIX/lib/ipsec/plugins).
plugin_dir() {
    local dir
    dir=$(dirname "$1")
    if [ -d "$dir/plugins" ]; then echo "$dir/plugins"; else echo "$(dirname "$(dirname "$dir")")/lib/ipsec/plugins"; fi
}

# load_list CHARON|SWANCTL PLUGIN...: the plugins of the list that build has (in order); a
# swanctl in .../sbin has its plugins in .../lib/ipsec/plugins.
load_list() {
    local dir p out=
    case $1 in
        */sbin/*) dir=$(dirname "$(dirname "$1")")/lib/ipsec/plugins;;
        *) dir=$(plugin_dir "$1");;
    esac
    shift
    for p in "$@"; do
        [ -e "$dir/libstrongswan-$p.so" ] && out="$out${out:+ }$p"
    done
    echo "$out"
}

# write_conf SITE: (re)write strongswan.conf and swanctl.conf from the site's state
write_conf() {
    local site=$1 esp1 ike1 ts1 psk1 mobike d me peer lnet rnet lid rid extra dropped noconns child
    local load swload sub
    esp1=$(get_state "$site" ESP1 "$ESP_PROPOSAL")
    ike1=$(get_state "$site" IKE1 "$IKE_PROPOSAL")
    psk1=$(get_state "$site" PSK1 "$PSK")
    mobike=$(get_state "$site" MOBIKE no)
    extra=$(get_state "$site" EXTRA 0)
    dropped=$(get_state "$site" DROP "")
    noconns=$(get_state "$site" NOCONNS no)
    d=$(sdir "$site")
    if [ "$site" = a ]; then
        me=192.0.2.1; peer=192.0.2.2; lnet=198.51.100; rnet=203.0.113; lid=a; rid=b
    else
        me=192.0.2.2; peer=192.0.2.1; lnet=203.0.113; rnet=198.51.100; lid=b; rid=a
    fi
    ts1=$(get_state "$site" TS1 "$lnet.0/26")
    load=$(load_list "$(site_charon "$site")" random nonce openssl aes sha1 sha2 hmac gmp kdf pubkey \
        kernel-libipsec kernel-netlink socket-default vici)
    swload=$(load_list "$(command -v "$SWANCTL")" random nonce openssl pem pkcs1 pkcs8 x509 pubkey)
    # The credential directories swanctl --load-all scans (it complains about each one missing).
    for sub in x509 x509ca x509ocsp x509aa x509ac x509crl pubkey private rsa ecdsa bliss pkcs8 pkcs12; do
        mkdir -p "$d/swanctl/$sub"
    done
    cat > "$d/strongswan.conf.tmp" <<EOF
# generated by tests/lab/lab.sh for lab $NAME site $site
charon {
    load_modular = no
    load = $load
    retransmit_tries = 2
    retransmit_timeout = 1.0
    retransmit_base = 1.0
    install_virtual_ip = no
    plugins {
        vici {
            socket = $(uri "$site")
        }
    }
    filelog {
        lab {
            path = $d/charon.log
            time_format = %Y-%m-%d %H:%M:%S
            ike_name = yes
            append = yes
            flush_line = yes
            default = 1
            ike = 2
            cfg = 1
        }
    }
    syslog {
        # no syslog output from lab daemons
    }
}
swanctl {
    load = $swload
}
EOF
    mv "$d/strongswan.conf.tmp" "$d/strongswan.conf"
    if [ "$noconns" = yes ]; then
        cat > "$d/swanctl/swanctl.conf.tmp" <<EOF
# generated by tests/lab/lab.sh for lab $NAME site $site: no connections loaded yet
secrets {
    ike-lab {
        secret = "$psk1"
    }
}
EOF
        mv "$d/swanctl/swanctl.conf.tmp" "$d/swanctl/swanctl.conf"
        return
    fi
    cat > "$d/swanctl/swanctl.conf.tmp" <<EOF
# generated by tests/lab/lab.sh for lab $NAME site $site (con1 ESP: $esp1, IKE: $ike1, local_ts: $ts1, mobike: $mobike)
connections {
    con1 {
        version = 2
        local_addrs = $me
        remote_addrs = $peer
        proposals = $ike1
        mobike = $mobike
        dpd_delay = 2s
        local {
            auth = psk
            id = con1.$lid.swandog.test
        }
        remote {
            auth = psk
            id = con1.$rid.swandog.test
        }
        children {
            con1 {
                local_ts = $ts1
                remote_ts = $rnet.0/26
                esp_proposals = $esp1
                dpd_action = clear
                start_action = none
                close_action = none
            }
        }
    }
    con2 {
        version = 2
        local_addrs = $me
        remote_addrs = $peer
        proposals = $IKE_PROPOSAL
        mobike = $mobike
        dpd_delay = 2s
        local {
            auth = psk
            id = con2.$lid.swandog.test
        }
        remote {
            auth = psk
            id = con2.$rid.swandog.test
        }
        children {
            con2_1 {
                local_ts = $lnet.64/26
                remote_ts = $rnet.64/26
                esp_proposals = $ESP_PROPOSAL
                if_id_in = 42
                if_id_out = 42
                dpd_action = clear
                start_action = none
                close_action = none
            }
            con2_2 {
                local_ts = $lnet.128/26
                remote_ts = $rnet.128/26
                esp_proposals = $ESP_PROPOSAL
                if_id_in = 43
                if_id_out = 43
                dpd_action = clear
                start_action = none
                close_action = none
            }
        }
    }
$(extra_conn "$extra" "$me" "$peer" "$lnet" "$rnet" "$lid" "$rid" "$mobike")
}
secrets {
    ike-lab {
        secret = "$psk1"
    }
}
EOF
    # `drop`: remove each dropped child's block (from its "NAME {" line to its closing brace).
    for child in $dropped; do
        awk -v c="$child" '
            skip == 0 && $1 == c && $2 == "{" { skip = 1; next }
            skip == 1 { if ($1 == "}") skip = 0; next }
            { print }' "$d/swanctl/swanctl.conf.tmp" > "$d/swanctl/swanctl.conf.tmp2"
        mv "$d/swanctl/swanctl.conf.tmp2" "$d/swanctl/swanctl.conf.tmp"
    done
    mv "$d/swanctl/swanctl.conf.tmp" "$d/swanctl/swanctl.conf"
}

# extra_conn N ME PEER LNET RNET LID RID MOBIKE: con3 with N route-based children, one host pair
# (.192+i/32) each, so every child has its own traffic selectors.
extra_conn() {
    local n=$1 i
    [ "$n" -gt 0 ] || return 0
    cat <<EOF
    con3 {
        version = 2
        local_addrs = $2
        remote_addrs = $3
        proposals = $IKE_PROPOSAL
        mobike = $8
        dpd_delay = 2s
        local {
            auth = psk
            id = con3.$6.swandog.test
        }
        remote {
            auth = psk
            id = con3.$7.swandog.test
        }
        children {
EOF
    for i in $(seq 1 "$n"); do
        cat <<EOF
            con3_$i {
                local_ts = $4.$((192 + i))/32
                remote_ts = $5.$((192 + i))/32
                esp_proposals = $ESP_PROPOSAL
                if_id_in = $((100 + i))
                if_id_out = $((100 + i))
                dpd_action = clear
                start_action = none
                close_action = none
            }
EOF
    done
    echo "        }"
    echo "    }"
}

# ---------------------------------------------------------------- processes

# our_pid SITE: print the pid of this site's charon if it is alive (not a zombie) and ours.
our_pid() {
    local site=$1 pf pid state
    pf=$(sdir "$site")/charon.pid
    [ -f "$pf" ] || return 1
    pid=$(cat "$pf" 2>/dev/null) || return 1
    case $pid in ""|*[!0-9]*) return 1;; esac
    [ -r "/proc/$pid/environ" ] || return 1
    state=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [ "$state" != Z ] || return 1
    tr '\0' '\n' 2>/dev/null < "/proc/$pid/environ" | grep -qxF "STRONGSWAN_CONF=$(conf "$site")" || return 1
    echo "$pid"
}

log_tail() {
    local site=$1 f
    f=$(sdir "$site")/charon.log
    if [ -f "$f" ]; then
        echo "---- last lines of $f ----" >&2
        tail -n "${2:-25}" "$f" >&2
    fi
    f=$(sdir "$site")/charon.out
    if [ -s "$f" ]; then
        echo "---- last lines of $f ----" >&2
        tail -n 10 "$f" >&2
    fi
}

wait_vici() {
    local site=$1 i
    for i in $(seq 1 100); do
        if SW_TIMEOUT=2 sw "$site" --stats >/dev/null 2>&1; then return 0; fi
        if ! our_pid "$site" >/dev/null; then
            log_tail "$site"
            die "charon of site $site exited during startup"
        fi
        sleep 0.1
    done
    log_tail "$site"
    die "VICI socket $(uri "$site") did not answer within 10 s"
}

start_charon() {
    local site=$1 d pid
    d=$(sdir "$site")
    ip netns list | grep -q "^$(ns "$site")\b" || die "namespace $(ns "$site") missing; run '$PROG $NAME up'"
    [ -f "$d/strongswan.conf" ] || die "no config for site $site; run '$PROG $NAME up'"
    if pid=$(our_pid "$site"); then
        die "charon of site $site already running (pid $pid)"
    fi
    # A killed charon leaves its socket and /run/charon.pid behind; clear both.
    rm -f "$d/charon.vici" "$d/charon.pid"
    rm -rf "$d/run"; mkdir -p "$d/run"
    # The child writes its own pid ($$, which exec keeps) before becoming charon.
    STRONGSWAN_CONF=$(conf "$site") setsid ip netns exec "$(ns "$site")" \
        unshare --mount --propagation private \
        sh -c 'mount --bind "$1" /run && echo $$ > "$2" && exec "$3"' \
        lab-charon "$d/run" "$d/charon.pid" "$(site_charon "$site")" \
        >> "$d/charon.out" 2>&1 < /dev/null &
    for _ in $(seq 1 50); do
        [ -s "$d/charon.pid" ] && break
        sleep 0.05
    done
    [ -s "$d/charon.pid" ] || { log_tail "$site"; die "charon of site $site did not start"; }
    wait_vici "$site"
    sw "$site" --load-all --file "$d/swanctl/swanctl.conf" >"$d/load.out" 2>&1 || {
        cat "$d/load.out" >&2; die "swanctl --load-all failed on site $site"; }
}

# stop_charon SITE SIGNAL WAIT_S: signal our charon, wait, then SIGKILL it. Quiet if not running.
stop_charon() {
    local site=$1 sig=$2 wait_s=$3 pid i
    pid=$(our_pid "$site") || return 0
    kill "-$sig" "$pid" 2>/dev/null || true
    kill -CONT "$pid" 2>/dev/null || true   # a paused charon cannot handle SIGTERM
    for i in $(seq 1 $((wait_s * 10))); do
        our_pid "$site" >/dev/null || return 0
        sleep 0.1
    done
    note "charon of site $site (pid $pid) still alive after ${wait_s}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for i in $(seq 1 30); do
        our_pid "$site" >/dev/null || return 0
        sleep 0.1
    done
    die "charon of site $site (pid $pid) did not die"
}

require_running() {
    our_pid "$1" >/dev/null || die "charon of site $1 is not running (lab $NAME)"
}

# ---------------------------------------------------------------- SA queries

installed_children() {
    # child lines of `swanctl --list-sas` look like "  con2_1: #3, reqid 2, INSTALLED, TUNNEL..."
    sw "$1" --list-sas 2>/dev/null | sed -n 's/^  \([^ :]*\): #[0-9]*, reqid [0-9]*, INSTALLED,.*/\1/p'
}

# wait_installed SITE N TIMEOUT_S: wait until exactly N children are INSTALLED.
wait_installed() {
    local site=$1 n=$2 t=$3 end got
    end=$(( $(date +%s%N) + t * 1000000000 ))
    while :; do
        got=$(SW_TIMEOUT=3 installed_children "$site" | grep -c . || true)
        [ "$got" = "$n" ] && return 0
        [ "$(date +%s%N)" -lt "$end" ] || break
        sleep 0.2
    done
    note "site $site: $got children INSTALLED, wanted $n (waited ${t}s)"
    return 1
}

# ---------------------------------------------------------------- network

net_up() {
    local a b
    a=$(ns a); b=$(ns b)
    ip netns add "$a"
    ip netns add "$b"
    # veth created inside the namespaces: names never clash in the root namespace.
    ip -n "$a" link add veth-a type veth peer name veth-b netns "$b"
    ip -n "$a" addr add 192.0.2.1/24 dev veth-a
    ip -n "$b" addr add 192.0.2.2/24 dev veth-b
    ip -n "$a" link set lo up; ip -n "$a" link set veth-a up
    ip -n "$b" link set lo up; ip -n "$b" link set veth-b up
    # Inner hosts on lo (no dummy driver on this kernel); one per child's /26.
    for h in 1 65 129; do
        ip -n "$a" addr add "198.51.100.$h/32" dev lo
        ip -n "$b" addr add "203.0.113.$h/32" dev lo
    done
}

# ---------------------------------------------------------------- commands

cmd_down() {
    local site
    for site in a b; do stop_charon "$site" TERM 3; done
    for site in a b; do
        if ip netns list | grep -q "^$(ns "$site")\b"; then
            ip netns del "$(ns "$site")"
        fi
    done
    rm -rf "${RUN:?}"
}

cmd_up() {
    local t0 site child
    t0=$(date +%s%N)
    if [ -e "$RUN" ] || ip netns list | grep -q "^sd-$NAME-[ab]\b"; then
        note "lab $NAME exists; tearing it down first"
        cmd_down
    fi
    command -v "$SWANCTL" >/dev/null || die "swanctl $SWANCTL not found (apt-get install strongswan-swanctl)"
    local c
    for c in "$CHARON" "$CHARON_B"; do
        [ -x "$c" ] || die "$c not found (apt-get install strongswan-charon, or scripts/strongswan6.sh)"
        [ -e "$(plugin_dir "$c")/libstrongswan-kernel-libipsec.so" ] ||
            die "kernel-libipsec plugin missing in $(plugin_dir "$c") (apt-get install libcharon-extra-plugins)"
    done
    local sock_len=${#RUN}
    [ $((sock_len + 14)) -lt 100 ] || die "run dir $RUN too long for a unix socket path"
    mkdir -p "$RUN/a" "$RUN/b"
    net_up
    for site in a b; do
        write_conf "$site"
        start_charon "$site"
    done
    for child in con1 con2_1 con2_2; do
        if ! sw a --initiate --child "$child" --timeout "$INIT_TIMEOUT" > "$RUN/a/initiate-$child.out" 2>&1; then
            cat "$RUN/a/initiate-$child.out" >&2
            log_tail a; log_tail b
            die "initiating $child from site a failed"
        fi
    done
    for site in a b; do
        if ! wait_installed "$site" 3 "$UP_TIMEOUT"; then
            log_tail "$site"
            die "lab $NAME: site $site does not have all 3 children INSTALLED"
        fi
    done
    note "lab $NAME up in $(( ($(date +%s%N) - t0) / 1000000 )) ms ($("$CHARON" --version 2>&1 | head -n 1)$(
        [ "$CHARON_B" = "$CHARON" ] || echo "; site b: $("$CHARON_B" --version 2>&1 | head -n 1)"))"
    echo "a $(uri a)"
    echo "b $(uri b)"
}

nft_break() {
    ip netns exec "$(ns a)" nft -f - <<'EOF'
table inet swandog_lab
delete table inet swandog_lab
table inet swandog_lab {
    chain in {
        type filter hook input priority 0; policy accept;
        udp dport { 500, 4500 } drop
        udp sport { 500, 4500 } drop
    }
    chain out {
        type filter hook output priority 0; policy accept;
        udp dport { 500, 4500 } drop
        udp sport { 500, 4500 } drop
    }
}
EOF
}

nft_heal() {
    ip netns exec "$(ns a)" nft -f - <<'EOF'
table inet swandog_lab
delete table inet swandog_lab
EOF
}

need_lab() {
    [ -d "$RUN" ] || die "lab $NAME is not up (no $RUN)"
}

case $CMD in
    up)       cmd_up;;
    down)     cmd_down;;
    break)    need_lab; nft_break;;
    heal)     need_lab; nft_heal;;
    stop)     check_site "${1:-}"; need_lab
              if our_pid "$1" >/dev/null; then stop_charon "$1" TERM 10
              else note "charon of site $1 is not running; nothing to stop"; fi;;
    start)    check_site "${1:-}"; need_lab; start_charon "$1";;
    kill)     check_site "${1:-}"; need_lab
              pid=$(our_pid "$1") || die "charon of site $1 is not running"
              kill -KILL "$pid"
              for _ in $(seq 1 30); do our_pid "$1" >/dev/null || break; sleep 0.1; done;;
    pause)    check_site "${1:-}"; need_lab
              pid=$(our_pid "$1") || die "charon of site $1 is not running"; kill -STOP "$pid";;
    resume)   check_site "${1:-}"; need_lab
              pid=$(our_pid "$1") || die "charon of site $1 is not running"; kill -CONT "$pid";;
    initiate) check_site "${1:-}"; [ $# -ge 2 ] || die "usage: $PROG $NAME initiate SITE CHILD"
              need_lab; site=$1 child=$2; shift 2
              sw "$site" --initiate --child "$child" --timeout "$INIT_TIMEOUT" "$@";;
    terminate) check_site "${1:-}"; [ $# -ge 2 ] || die "usage: $PROG $NAME terminate SITE CHILD"
              need_lab; site=$1 child=$2; shift 2
              sw "$site" --terminate --child "$child" --timeout "$INIT_TIMEOUT" "$@";;
    mismatch) check_site "${1:-}"; need_lab
              case ${2:-esp} in
                  esp) set_state "$1" ESP1 "$ESP_MISMATCH";;
                  ike) set_state "$1" IKE1 "$IKE_MISMATCH";;
                  ts)  set_state "$1" TS1 192.0.2.128/26;;
                  psk) set_state "$1" PSK1 "$PSK-mismatch";;
                  *)   die "usage: $PROG $NAME mismatch SITE [esp|ike|ts|psk]";;
              esac
              write_conf "$1"
              sw "$1" --load-all --file "$(sdir "$1")/swanctl/swanctl.conf";;
    match)    check_site "${1:-}"; need_lab
              set_state "$1" ESP1 "$ESP_PROPOSAL"; set_state "$1" IKE1 "$IKE_PROPOSAL"
              set_state "$1" TS1 ""; set_state "$1" PSK1 "$PSK"
              write_conf "$1"
              sw "$1" --load-all --file "$(sdir "$1")/swanctl/swanctl.conf";;
    mobike)   check_site "${1:-}"; need_lab
              case ${2:-} in yes|no) ;; *) die "usage: $PROG $NAME mobike SITE yes|no";; esac
              set_state "$1" MOBIKE "$2"
              write_conf "$1"
              sw "$1" --load-conns --file "$(sdir "$1")/swanctl/swanctl.conf";;
    extra)    check_site "${1:-}"; need_lab
              case ${2:-} in ""|*[!0-9]*) die "usage: $PROG $NAME extra SITE N";; esac
              [ "$2" -le 60 ] || die "extra: at most 60 children (one /32 pair each in .193-.252)"
              set_state "$1" EXTRA "$2"
              # A host of each child's /32 on lo: libipsec routes need a local address in it.
              if [ "$1" = a ]; then inner=198.51.100; else inner=203.0.113; fi
              for i in $(seq 1 "$2"); do
                  ip -n "$(ns "$1")" addr replace "$inner.$((192 + i))/32" dev lo
              done
              write_conf "$1"
              sw "$1" --load-conns --file "$(sdir "$1")/swanctl/swanctl.conf";;
    drop)     check_site "${1:-}"; [ $# -ge 2 ] || die "usage: $PROG $NAME drop SITE CHILD"
              need_lab
              set_state "$1" DROP "$(get_state "$1" DROP "") $2"
              write_conf "$1"
              sw "$1" --load-conns --file "$(sdir "$1")/swanctl/swanctl.conf";;
    noconns|conns)
              check_site "${1:-}"; need_lab
              if [ "$CMD" = noconns ]; then set_state "$1" NOCONNS yes
              else set_state "$1" NOCONNS no; set_state "$1" DROP ""; fi
              write_conf "$1"
              if our_pid "$1" >/dev/null; then
                  sw "$1" --load-all --file "$(sdir "$1")/swanctl/swanctl.conf"
              fi;;
    uri)      check_site "${1:-}"; uri "$1";;
    log)      check_site "${1:-}"; echo "$(sdir "$1")/charon.log";;
    sas)      check_site "${1:-}"; need_lab; sw "$1" --list-sas;;
    installed) check_site "${1:-}"; need_lab; require_running "$1"
              out=$(sw "$1" --list-sas) || die "swanctl --list-sas failed on site $1"
              printf '%s\n' "$out" | sed -n 's/^  \([^ :]*\): #[0-9]*, reqid [0-9]*, INSTALLED,.*/\1/p';;
    wait-installed)
              check_site "${1:-}"; [ $# -ge 3 ] || die "usage: $PROG $NAME wait-installed SITE N TIMEOUT_S"
              need_lab; wait_installed "$1" "$2" "$3";;
    status)   for site in a b; do
                  if pid=$(our_pid "$site"); then echo "$site running pid $pid $(uri "$site")"
                  else echo "$site stopped"; fi
              done;;
    *)        usage;;
esac
