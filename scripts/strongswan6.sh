#!/usr/bin/env bash
# Builds a strongSwan 6 charon + swanctl into a prefix outside the checkout, for the second lab
# beside Debian 12's 5.9.8 (routers run 6.0.3 on OpenWrt 25.12). Run as root (apt, /opt).
#
#   scripts/strongswan6.sh            build (or reuse) and print, on stdout:
#       SWANDOG_CHARON=PREFIX/libexec/ipsec/charon
#       SWANDOG_SWANCTL=PREFIX/sbin/swanctl
#
# Source, first that applies (the one used is said loudly on stderr):
#   1. ../shared/strongswan/strongswan-6.0.6.tar.xz beside the checkout (CI has it), or
#      SWANDOG_STRONGSWAN_TARBALL=PATH          -> prefix /opt/swandog-strongswan-6.0.6
#   2. Debian trixie's source package (6.0.1) through `apt-get source`, with a deb-src line for
#      trixie in a private apt configuration in the build's temporary directory (the system's
#      sources are never touched; the archive URI is the one the system's own Debian sources use)
#                                               -> prefix /opt/swandog-strongswan-trixie
# SWANDOG_STRONGSWAN_PREFIX overrides the prefix. A finished build (stamp file PREFIX/.swandog-built
# naming the source) is reused: a second run takes well under a second.
# Plugins: kernel-libipsec, kernel-netlink, socket-default, openssl, vici, random, nonce, kdf,
# pubkey, pem, pkcs1, pkcs8, x509 (what tests/lab/lab.sh loads) and the default set.
# Build time here: about 3 min for 6.0.6 on 2 cores (autogen included).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
say() { echo "strongswan6: $*" >&2; }
die() { say "error: $*"; exit 1; }
[[ $(id -u) == 0 ]] || die "run as root (apt-get build dependencies, install under /opt)"

tarball=${SWANDOG_STRONGSWAN_TARBALL:-$here/../shared/strongswan/strongswan-6.0.6.tar.xz}
if [[ -f $tarball ]]; then
    source_kind=tarball
    tarball=$(cd "$(dirname "$tarball")" && pwd)/$(basename "$tarball")
    version=$(basename "$tarball" .tar.xz); version=${version#strongswan-}
    source_id="tarball $tarball sha256 $(sha256sum "$tarball" | cut -d' ' -f1)"
else
    source_kind=debian
    version=6.0.1   # what trixie has; the version unpacked is said once it is known
    source_id="debian trixie source package strongswan"
fi
if [[ $source_kind == tarball ]]; then default_prefix=/opt/swandog-strongswan-$version
else default_prefix=/opt/swandog-strongswan-trixie; fi
prefix=${SWANDOG_STRONGSWAN_PREFIX:-$default_prefix}
stamp=$prefix/.swandog-built
charon=$prefix/libexec/ipsec/charon
swanctl=$prefix/sbin/swanctl

print_paths() {
    echo "SWANDOG_CHARON=$charon"
    echo "SWANDOG_SWANCTL=$swanctl"
}

if [[ -x $charon && -x $swanctl && -f $stamp && $(cat "$stamp") == "$source_id" ]]; then
    say "reusing strongSwan $version in $prefix ($source_id)"
    print_paths
    exit 0
fi

if [[ $source_kind == tarball ]]; then
    say "*** building strongSwan $version from $tarball ***"
else
    say "*** $tarball absent: building strongSwan $version from Debian trixie's source package ***"
fi

deps=(build-essential autoconf automake libtool gperf bison flex pkg-config libgmp-dev libssl-dev
      dpkg-dev xz-utils)
missing=(); for p in "${deps[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
    say "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    aptlog=$(mktemp /tmp/swandog-strongswan-apt.XXXXXX)
    { apt-get -o DPkg::Lock::Timeout=600 update -qq &&
      apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}"; } \
        >"$aptlog" 2>&1 || { tail -n 20 "$aptlog" >&2; die "apt-get install failed (log: $aptlog)"; }
    rm -f "$aptlog"
fi

work=$(mktemp -d /tmp/swandog-strongswan-build.XXXXXX)
log=$work/build.log
keep_log=/tmp/swandog-strongswan-$version-build.log
cleanup() { [[ -f $log ]] && cp "$log" "$keep_log"; rm -rf "$work"; }
trap cleanup EXIT

# fetch_debian DIR: unpack trixie's strongswan source package into DIR/strongswan-VERSION.
fetch_debian() {
    local d=$1 apt=$1/apt uri
    # The Debian archive URI the system already uses (deb822 or one-line format).
    uri=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
        awk '/^URIs:/ {u=$2} /^Suites:/ && / (bookworm|trixie|stable)( |$)/ {print u; exit}')
    [[ -n $uri ]] || uri=$(awk '$1 == "deb" && $3 ~ /^(bookworm|trixie|stable)$/ {print $2; exit}' \
        /etc/apt/sources.list 2>/dev/null || true)
    [[ -n $uri ]] || die "no Debian archive URI in the system's apt sources to take trixie's source from"
    mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/parts" "$apt/prefs"
    echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri trixie main" \
        > "$apt/sources.list"
    local opts=(-o Dir::Etc::sourcelist="$apt/sources.list" -o Dir::Etc::sourceparts="$apt/parts"
                -o Dir::Etc::preferencesparts="$apt/prefs" -o Dir::State::lists="$apt/lists"
                -o Dir::Cache="$apt/cache" -o APT::Sandbox::User=root)
    say "private apt config $apt/sources.list: $(cat "$apt/sources.list")"
    apt-get "${opts[@]}" update -qq >&2
    (cd "$d" && apt-get "${opts[@]}" source -qq strongswan >&2) ||
        die "apt-get source strongswan (trixie) failed"
    local src
    src=$(find "$d" -maxdepth 1 -type d -name 'strongswan-6*' | head -n 1)
    [[ -n $src ]] || die "apt-get source strongswan unpacked nothing in $d"
    version=${src##*/strongswan-}
    mv "$src" "$d/strongswan-src"
}

if [[ $source_kind == tarball ]]; then
    tar -xJf "$tarball" -C "$work"
    mv "$work/strongswan-$version" "$work/strongswan-src"
else
    fetch_debian "$work"
    say "Debian source package unpacked: strongswan $version"
fi
cd "$work/strongswan-src"
t0=$(date +%s)
{
    # A git archive has no configure yet; a release / Debian source has one.
    [[ -x configure ]] || ./autogen.sh
    ./configure --prefix="$prefix" --sysconfdir="$prefix/etc" \
        --enable-kernel-libipsec --enable-openssl \
        --disable-stroke --disable-scepclient --disable-pki --disable-updown --disable-resolve \
        --disable-attr --disable-xauth-generic --disable-eap-mschapv2 --disable-charon-cmd
    make -j"$(nproc)"
    rm -rf "$prefix"
    make install
} >"$log" 2>&1 || { tail -n 30 "$log" >&2; die "strongSwan $version build failed (log: $keep_log)"; }
for f in "$charon" "$swanctl" "$prefix/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so" \
         "$prefix/lib/ipsec/plugins/libstrongswan-vici.so"; do
    [[ -e $f ]] || die "build finished but $f is missing (log: $keep_log)"
done
echo "$source_id" > "$stamp"
say "built strongSwan $version ($source_kind) into $prefix in $(( $(date +%s) - t0 )) s"
print_paths
