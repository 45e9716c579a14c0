#!/usr/bin/env bash
# Installs what swandog's build, demo and tests need on a fresh Debian 12 machine (run as root).
# Idempotent and quiet when everything is already there.
#
#   build : a Rust toolchain (rustup's if present, else Debian's rustc-web + cargo-web)
#   lab   : strongSwan's charon + swanctl + libipsec plugin, nftables, iproute2, ping
#   tests : busybox (real syslogd and init for the firmware tests), python3 (scripted VICI peer),
#           prometheus + prometheus-node-exporter (the metrics file read by the real engines)
set -euo pipefail

APT_PKGS=(strongswan-charon strongswan-swanctl libcharon-extra-plugins nftables iproute2
          iputils-ping busybox python3 procps util-linux ca-certificates
          prometheus prometheus-node-exporter)

log() { echo "setup: $*" >&2; }
[[ $(id -u) == 0 ]] || { log "run as root (the lab needs network namespaces; apt needs root)"; exit 1; }

have_pkg() { [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]; }

missing=()
for p in "${APT_PKGS[@]}"; do have_pkg "$p" || missing+=("$p"); done
if ! command -v cargo >/dev/null 2>&1 && [[ ! -x $HOME/.cargo/bin/cargo ]]; then
    missing+=(rustc-web cargo-web)
fi
if ((${#missing[@]})); then
    log "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
# Installing strongswan-charon must not leave a system charon running beside the lab's.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet strongswan-starter 2>/dev/null; then
    log "note: a system strongSwan is running; the lab uses its own charons in namespaces"
fi
log "ok"
