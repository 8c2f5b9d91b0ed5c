#!/usr/bin/env bash
# bridge-bench.sh: what a bridge forwards, ours against mosquitto's, in one run.
#
# For each broker (ours, mosquitto) and each load (QoS 0: mqtt-load `fanin`, 8 publishers and
# one `#` subscriber; QoS 1: mqtt-load `qos1`, 8 publishers with 64 in flight, lossless check):
#   direct   publishers and subscriber on the remote broker;
#   bridged  publishers on a local broker that bridges `load/#` out to the remote broker
#            (`topic load/# out QOS`), subscriber on the remote broker.
# Rounds alternate between the brokers. Prints medians of msg/s and delivery, the bridged /
# direct ratio per broker, and ours / mosquitto bridged.
#
# CPUs: the remote broker on CPU 1, the local (bridging) broker on CPU 0, the load tool
# unpinned (a two-CPU machine has no third CPU for it: both brokers share theirs with it, the
# same for both brokers).
#
# Environment: ROUNDS (3), DURATION (5 s), MOSQUITTO (path), CARGO_TARGET_DIR, KEEP_LOGS=1.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
MOSQUITTO=${MOSQUITTO:-$(command -v mosquitto || echo /usr/sbin/mosquitto)}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bridge-bench.XXXXXX")
RESULTS=$WORK/results.txt
: >"$RESULTS"
PIDS=()

trap cleanup_tracked EXIT
trap 'exit 130' INT TERM

log() { echo "[bridge-bench] $*" >&2; }

# shellcheck source=scripts/lib-brokers.sh
. "$ROOT/scripts/lib-brokers.sh"

# One measurement: broker $1, load $2 (qos0 or qos1), mode $3 (direct or bridged).
measure() { # broker load mode
    local broker=$1 load=$2 mode=$3 args line
    start_bridge_pair "$broker" "${load#qos}" "$mode"
    case $load in
    qos0) args="fanin --publishers 8 --subscribers 1 --qos 0 --drain 3" ;;
    qos1) args="qos1 --publishers 8 --window 64 --drain 20" ;;
    esac
    # shellcheck disable=SC2086
    line=$("$TARGET/release/mqtt-load" $args --port "$LOCAL_PORT" --sub-port "$REMOTE_PORT" \
        --duration "$DURATION" --quiet --broker "$broker-$mode" | grep '^RESULT' || true)
    echo "$broker $load $mode $line" >>"$RESULTS"
    log "$broker $load $mode: $(grep -o 'msg_per_s=[0-9.]*' <<<"$line") $(grep -o 'delivered_pct=[0-9.]*' <<<"$line")"
    local pid
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    PIDS=()
}

# The median of field $4 over the rounds of broker $1, load $2, mode $3.
figure() { # broker load mode field
    grep "^$1 $2 $3 " "$RESULTS" | grep -o " $4=[0-9.]*" | cut -d= -f2 | median
}

main() {
    build_release
    log "$ROUNDS rounds of ${DURATION}s; mosquitto $("$MOSQUITTO" -h 2>/dev/null | head -1 | grep -o '[0-9][0-9.]*' || echo '?')"
    for round in $(seq "$ROUNDS"); do
        for load in qos0 qos1; do
            for broker in ours mosquitto; do
                for mode in direct bridged; do
                    log "round $round"
                    measure "$broker" "$load" "$mode"
                done
            done
        done
    done
    echo
    printf '%-10s %-5s %12s %12s %9s %11s %11s\n' broker load direct bridged ratio direct_pct bridged_pct
    for load in qos0 qos1; do
        for broker in ours mosquitto; do
            local d b
            d=$(figure "$broker" "$load" direct msg_per_s)
            b=$(figure "$broker" "$load" bridged msg_per_s)
            printf '%-10s %-5s %12.0f %12.0f %9.2f %11s %11s\n' "$broker" "$load" "$d" "$b" \
                "$(awk -v b="$b" -v d="$d" 'BEGIN {print (d > 0) ? b / d : 0}')" \
                "$(figure "$broker" "$load" direct delivered_pct)" \
                "$(figure "$broker" "$load" bridged delivered_pct)"
        done
        printf 'ours/mosquitto bridged %s: %.2f\n' "$load" "$(awk \
            -v o="$(figure ours "$load" bridged msg_per_s)" \
            -v m="$(figure mosquitto "$load" bridged msg_per_s)" 'BEGIN {print (m > 0) ? o / m : 0}')"
    done
    echo
    # QoS 0 may be dropped by design; a lost QoS 1 message or a failed check is a fault.
    grep -h " qos=1 .*lost=[1-9]\|verified=FAILED\|errors=[1-9]" "$RESULTS" | sed 's/^/anomaly: /' || true
}

main "$@"
