#!/usr/bin/env bash
# perf-sweep.sh: the data behind the plots of docs/PERFORMANCE-brokers.md, then the plots.
#
#  1. QoS 0 fan-out sweep: `mqtt-load fanout` with 1 publisher and S subscribers for S in COUNTS
#     (1 10 100 1000), DURATION seconds per point, ROUNDS rounds, against every broker in
#     BROKERS (ours, mosquitto, rumqttd), each started fresh per point with the limits of
#     scripts/compare-brokers.sh (both take them from scripts/lib-brokers.sh), broker pinned to
#     BROKER_CPUS, load tool to LOAD_CPUS; the broker order rotates between rounds.
#  2. Latency at 1,000 msg/s: scripts/compare-brokers.sh with SCENARIOS=latency (its raw
#     RESULT lines are kept), run under `chrt -f LATENCY_RT_PRIORITY` (10) so that brokers and
#     load tool (which inherit the policy) preempt other jobs on a shared machine at once
#     instead of waiting out their time slice (~4 ms, which otherwise sets every broker's p99);
#     the run uses little CPU, and the kernel's RT throttling leaves others 5 % regardless.
#     LATENCY_RT_PRIORITY=0 runs it at normal priority.
#  3. scripts/plot-performance.py writes docs/perf-fanout.svg and docs/perf-latency.svg.
#
# RESULT lines go to $DATA_DIR/fanout.txt and $DATA_DIR/latency.txt (each with a header naming
# the machine, load average, commit and settings). Every run is bounded by `timeout`; brokers
# are stopped by PID.
#
# Usage: scripts/perf-sweep.sh          (from anywhere inside the workspace)
# Environment: COUNTS ("1 10 100 1000"), ROUNDS (2), DURATION (3), LATENCY_DURATION (5),
#   LATENCY_RT_PRIORITY (10; 0 = normal scheduling),
#   BROKERS ("ours mosquitto rumqttd"), BROKER_CPUS (0), LOAD_CPUS (1), DATA_DIR
#   (docs/perf-data), PLOT_DIR (docs), SKIP_FANOUT=1 / SKIP_LATENCY=1 (re-plot kept data),
#   MOSQUITTO, RUMQTTD (paths), CARGO_TARGET_DIR.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
COUNTS=${COUNTS:-"1 10 100 1000"}
ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-3}
LATENCY_DURATION=${LATENCY_DURATION:-5}
LATENCY_RT_PRIORITY=${LATENCY_RT_PRIORITY:-10}
BROKERS=${BROKERS:-"ours mosquitto rumqttd"}
BROKER_CPUS=${BROKER_CPUS:-0}
LOAD_CPUS=${LOAD_CPUS:-1}
DATA_DIR=${DATA_DIR:-$ROOT/docs/perf-data}
PLOT_DIR=${PLOT_DIR:-$ROOT/docs}
MOSQUITTO=${MOSQUITTO:-$(command -v mosquitto || echo /usr/sbin/mosquitto)}
RUMQTTD=${RUMQTTD:-$(command -v rumqttd || echo /work/rumqttd-install/bin/rumqttd)}
RUN_TIMEOUT=$((DURATION * 4 + 60))

WORK=$(mktemp -d "${TMPDIR:-/tmp}/perf-sweep.XXXXXX")
BROKER_PID=""

log() { echo "[perf-sweep] $*" >&2; }

# shellcheck source=scripts/lib-brokers.sh
. "$ROOT/scripts/lib-brokers.sh"

# Stops the current broker (by PID).
stop_broker() {
    local pid=$BROKER_PID
    BROKER_PID=""
    stop_pid "$pid"
}

cleanup() {
    stop_broker
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Starts broker $1 on a free port, pinned to BROKER_CPUS; sets BROKER_PID and BROKER_PORT.
start_broker() { start_limited_broker "$1" "$BROKER_CPUS"; }

header() { # what
    echo "# $1: $(date -u +%FT%TZ), commit $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (working tree has uncommitted edits)'), $(nproc) CPUs, $(awk '/^MemTotal/ {print int($2/1048576)}' /proc/meminfo) GiB, load average $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "# broker taskset -c $BROKER_CPUS, mqtt-load taskset -c $LOAD_CPUS --threads 1; limits of scripts/compare-brokers.sh"
}

fanout_sweep() {
    local out=$DATA_DIR/fanout.txt round count i n order broker line
    header "scripts/perf-sweep.sh fanout, COUNTS=\"$COUNTS\" ROUNDS=$ROUNDS DURATION=$DURATION" >"$out"
    read -r -a order <<<"$BROKERS"
    n=${#order[@]}
    for round in $(seq 1 "$ROUNDS"); do
        for count in $COUNTS; do
            for i in $(seq 0 $((n - 1))); do
                broker=${order[$(((i + round - 1) % n))]}
                if ! start_broker "$broker"; then
                    log "round $round $broker $count: broker did not start"
                    stop_broker
                    continue
                fi
                line=$(timeout "$RUN_TIMEOUT" taskset -c "$LOAD_CPUS" "$TARGET/release/mqtt-load" fanout \
                    --host 127.0.0.1 --port "$BROKER_PORT" --broker "$broker" --threads 1 --quiet \
                    --duration "$DURATION" --drain 2 --publishers 1 --subscribers "$count" \
                    2>>"$WORK/load.log" | grep '^RESULT' || true)
                stop_broker
                if [[ -n $line ]]; then
                    echo "round $round $line" >>"$out"
                    log "round $round $broker S=$count: $(grep -o ' msg_per_s=[^ ]*' <<<"$line") $(grep -o ' delivered_pct=[^ ]*' <<<"$line")"
                else
                    log "round $round $broker S=$count: no result"
                fi
            done
        done
    done
}

latency_runs() {
    local out=$DATA_DIR/latency.txt rt=()
    ((LATENCY_RT_PRIORITY > 0)) && rt=(chrt -f "$LATENCY_RT_PRIORITY")
    header "${rt[*]:-} scripts/compare-brokers.sh SCENARIOS=latency ROUNDS=$ROUNDS DURATION=$LATENCY_DURATION" >"$out"
    SCENARIOS=latency ROUNDS=$ROUNDS DURATION=$LATENCY_DURATION BROKERS=$BROKERS \
        BROKER_CPUS=$BROKER_CPUS LOAD_CPUS=$LOAD_CPUS CARGO_TARGET_DIR=$TARGET \
        timeout $((ROUNDS * 3 * (LATENCY_DURATION * 4 + 60) + 300)) "${rt[@]}" "$ROOT/scripts/compare-brokers.sh" |
        grep 'RESULT ' | sed 's/^ *//' >>"$out"
}

main() {
    local b
    BROKERS=$(available_brokers)
    mkdir -p "$DATA_DIR"
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    build_release
    [[ ${SKIP_FANOUT:-0} == 1 ]] || fanout_sweep
    [[ ${SKIP_LATENCY:-0} == 1 ]] || latency_runs
    local data=()
    for b in fanout latency; do [[ -f $DATA_DIR/$b.txt ]] && data+=("$DATA_DIR/$b.txt"); done
    python3 "$ROOT/scripts/plot-performance.py" --out-dir "$PLOT_DIR" "${data[@]}"
}

main "$@"
