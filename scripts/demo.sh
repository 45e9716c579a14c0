#!/usr/bin/env bash
# swandog's main job, end to end, on a fresh Debian 12 machine (run as root):
# installs what it needs, builds swandog, brings up a real two-site strongSwan lab in network
# namespaces, runs `swandog run` against site A, drops the path (UDP 500/4500) until DPD gives
# up, heals it, and shows what swandog said and did. Cleans everything up at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
LAB=demo$$   # per run: a second demo or a test suite never shares its lab
OUT=$(mktemp -d /tmp/swandog-demo.XXXXXX)
SWANDOG=target/release/swandog
pid=

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
cleanup() {
    [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    tests/lab/lab.sh $LAB down >/dev/null 2>&1 || true
}
trap cleanup EXIT

say "installing what is missing (apt) and building swandog (release)"
scripts/setup.sh
cargo build --release -q
ls -l "$SWANDOG" | awk '{print "binary: " $5 " bytes, stripped"}'

say "bringing up the lab: site A 192.0.2.1 <-> site B 192.0.2.2, tunnels con1, con2_1, con2_2"
tests/lab/lab.sh $LAB up
URI=$(tests/lab/lab.sh $LAB uri a)

say "swandog run --vici $URI --watch con1,con2_1,con2_2 --log stderr"
"$SWANDOG" run --vici "$URI" --watch con1,con2_1,con2_2 --log stderr \
    --status-file "$OUT/status" --backoff-cap-ms 10000 2>"$OUT/swandog.log" &
pid=$!
sleep 3
"$SWANDOG" status --status-file "$OUT/status"

say "dropping UDP 500/4500 at site A: DPD will give up in a few seconds"
tests/lab/lab.sh $LAB break
start=$(date +%s)
until grep -q "DPD failure" "$OUT/swandog.log"; do
    (( $(date +%s) - start < 30 )) || { echo "no DPD failure seen in 30 s"; cat "$OUT/swandog.log"; exit 1; }
    sleep 0.5
done
sleep 4

say "healing the path: swandog re-initiates the dropped tunnels by itself"
tests/lab/lab.sh $LAB heal
healed=$(date +%s)
until [[ $(tests/lab/lab.sh $LAB installed a | wc -l) -ge 3 ]]; do
    (( $(date +%s) - healed < 40 )) || { echo "tunnels not back within 40 s"; cat "$OUT/swandog.log"; exit 1; }
    sleep 0.5
done
echo "all 3 children INSTALLED again $(( $(date +%s) - healed )) s after the heal, no human command"
sleep 2

say "what swandog logged (on a router this goes to syslog: logread | grep swandog)"
cat "$OUT/swandog.log"

say "swandog status"
"$SWANDOG" status --status-file "$OUT/status"
say "done (cleaning up the lab)"
