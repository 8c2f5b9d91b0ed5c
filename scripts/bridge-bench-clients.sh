#!/usr/bin/env bash
# bridge-bench-clients.sh: a cross-check of bridge-bench.sh with Debian's own clients instead of
# mqtt-load. P `mosquitto_pub -l` processes each publish N numbered QoS Q lines to the local
# broker, which bridges `load/#` out to the remote one; one `mosquitto_sub -C P*N` on the remote
# counts them. The figure is P*N divided by the wall time from the first publisher's start to
# the subscriber's exit (or the messages it got by the time limit). Ours and mosquitto bridging,
# rounds alternating. Same CPU placement as bridge-bench.sh.
#
# Environment: ROUNDS (3), P (8), N (50000), Q (1), LIMIT (60 s), MOSQUITTO, CARGO_TARGET_DIR.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
ROUNDS=${ROUNDS:-3}
P=${P:-8}
N=${N:-50000}
Q=${Q:-1}
LIMIT=${LIMIT:-60}
MOSQUITTO=${MOSQUITTO:-$(command -v mosquitto || echo /usr/sbin/mosquitto)}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bridge-clients.XXXXXX")
PIDS=()

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "[bridge-clients] $*" >&2; }

# shellcheck source=scripts/lib-brokers.sh
. "$ROOT/scripts/lib-brokers.sh"

seq 1 "$N" >"$WORK/lines"

one_round() { # broker
    local broker=$1 remote local total start end got pid
    start_bridge_pair "$broker" "$Q" bridged
    remote=$REMOTE_PORT
    local=$LOCAL_PORT
    total=$((P * N))
    timeout "$LIMIT" mosquitto_sub -p "$remote" -q "$Q" -t 'load/#' -C "$total" >"$WORK/got" &
    local sub=$!
    sleep 0.5
    start=$(date +%s.%N)
    local pubs=()
    for i in $(seq 1 "$P"); do
        mosquitto_pub -p "$local" -q "$Q" -t "load/$i" -l <"$WORK/lines" &
        pubs+=("$!")
    done
    wait "$sub" || true
    end=$(date +%s.%N)
    got=$(wc -l <"$WORK/got")
    for pid in "${pubs[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    PIDS=()
    awk -v b="$broker" -v g="$got" -v t="$total" -v s="$start" -v e="$end" \
        'BEGIN { printf "%s %d %.0f %.1f\n", b, g, g / (e - s), 100 * g / t }'
}

build_release
log "$ROUNDS rounds: $P publishers x $N QoS $Q messages through a bridge"
for round in $(seq "$ROUNDS"); do
    for broker in ours mosquitto; do
        line=$(one_round "$broker")
        log "round $round: $line"
        echo "$line" >>"$WORK/results"
    done
done
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
o=$(grep '^ours ' "$WORK/results" | awk '{print $3}' | median)
m=$(grep '^mosquitto ' "$WORK/results" | awk '{print $3}' | median)
printf 'bridged msg/s (median of %s): ours %s, mosquitto %s, ratio %.2f\n' "$ROUNDS" "$o" "$m" \
    "$(awk -v o="$o" -v m="$m" 'BEGIN {print (m > 0) ? o / m : 0}')"
printf 'delivered %%: %s\n' "$(awk '{printf "%s:%s ", $1, $4}' "$WORK/results")"
