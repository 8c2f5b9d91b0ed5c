#!/usr/bin/env bash
# compare-brokers.sh: runs the mqtt-load scenarios against our broker (mqtt-broker), Debian's
# mosquitto and rumqttd on loopback, each under the same limits, and prints a table of medians
# with our ratios.
#
# Every broker is started fresh for every run, pinned to CPU 0 (taskset -c 0); the load tool is
# pinned to CPU 1 (taskset -c 1, one runtime thread). The brokers take turns within a round and
# the order rotates between rounds. Brokers that are not installed are skipped with a notice.
# The contestant `ours-2cpu` is our broker given both CPUs (taskset -c 0,1), sharing them with
# the load tool (also taskset -c 0,1): BROKERS="ours ours-2cpu" measures how it scales from one
# core to two, side by side.
#
# Same limits for all three (as far as each broker can express them):
#   - loopback only, anonymous clients allowed, no persistence, no logging of connections;
#   - QoS 1 messages in flight per client: 100
#     (mosquitto/ours: max_inflight_messages 100; rumqttd: max_inflight_count 100);
#   - queued messages per session: 1,000,000, so that the QoS 1 backlog of a 5 s run fits and
#     any loss is a fault (mosquitto/ours: max_queued_messages 1000000; mosquitto also
#     max_queued_bytes 16 MiB, the bound ours has built in; rumqttd has no per-session count, its router keeps a commit log of
#     10 segments x 100 MiB and forwards at most 200 packets per connection per pass);
#   - largest message: 1 MiB (mosquitto: payload; ours: whole packet; rumqttd: max_payload_size);
#   - connections: unlimited (rumqttd: router max_connections 20010, next_connection_delay_ms 0);
#   - MQTT 3.1.1 (rumqttd's v4 listener);
#   - TCP_NODELAY on the broker's sockets: ours always, mosquitto with set_tcp_nodelay true
#     (its default is off, which adds delayed-ACK stalls of ~40 ms to the latency tail),
#     rumqttd has no such option and leaves Nagle's algorithm on.
#
# QoS 0 messages that a broker drops (or has not delivered by the end of the drain time) are
# listed apart: brokers may drop them. Lost QoS 1 messages, errors and broker crashes, stalls
# or refusals to stop are listed as anomalies.
#
# Usage: scripts/compare-brokers.sh            (from anywhere inside the workspace)
# Environment: ROUNDS (3), DURATION seconds per run (5), IDLE_CONNECTIONS (10000),
#   FANOUT_SUBSCRIBERS (100, subscribers of the fanout scenario's one publisher),
#   BROKERS ("ours mosquitto rumqttd"; also "ours-2cpu", "ours-scraped" (ours with /metrics
#   fetched every second), "ours-page" (ours with its web page's stream of `#` read),
#   "ours-watched" (both at once) and
#   "ours-base" with OURS_BASE set to
#   another mqtt-broker binary, e.g. the build of the commit before a change), BROKER_CPUS (0), LOAD_CPUS (1), RUMQTTD (path; default rumqttd on PATH or
#   /work/rumqttd-install/bin/rumqttd), MOSQUITTO (path), CARGO_TARGET_DIR, KEEP_LOGS=1.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
IDLE_CONNECTIONS=${IDLE_CONNECTIONS:-10000}
FANOUT_SUBSCRIBERS=${FANOUT_SUBSCRIBERS:-100}
BROKERS=${BROKERS:-"ours mosquitto rumqttd"}
MOSQUITTO=${MOSQUITTO:-$(command -v mosquitto || echo /usr/sbin/mosquitto)}
RUMQTTD=${RUMQTTD:-$(command -v rumqttd || echo /work/rumqttd-install/bin/rumqttd)}
SCENARIOS=${SCENARIOS:-"fanin fanout qos1 latency idle connrate"}
BROKER_CPUS=${BROKER_CPUS:-0}
LOAD_CPUS=${LOAD_CPUS:-1}
WIDE_CPUS=0,1
RUN_TIMEOUT=$((DURATION * 4 + 60))

WORK=$(mktemp -d "${TMPDIR:-/tmp}/compare-brokers.XXXXXX")
RESULTS=$WORK/results.txt
ANOMALIES=$WORK/anomalies.txt
: >"$RESULTS"
: >"$ANOMALIES"
BROKER_PID=""

# Stops the broker of the current run (by PID) and removes the scratch directory.
cleanup() {
    if [[ -n $BROKER_PID ]] && kill -0 "$BROKER_PID" 2>/dev/null; then
        kill -TERM "$BROKER_PID" 2>/dev/null || true
        sleep 0.5
        kill -KILL "$BROKER_PID" 2>/dev/null || true
    fi
    if [[ ${KEEP_LOGS:-0} == 1 ]]; then
        echo "logs kept in $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "[compare] $*" >&2; }

# shellcheck source=scripts/lib-brokers.sh
. "$ROOT/scripts/lib-brokers.sh"

# The CPUs broker $1 runs on, and the CPUs the load tool runs on against it.
broker_cpus() { if [[ $1 == ours-2cpu ]]; then echo "$WIDE_CPUS"; else echo "$BROKER_CPUS"; fi; }
load_cpus() { if [[ $1 == ours-2cpu ]]; then echo "$WIDE_CPUS"; else echo "$LOAD_CPUS"; fi; }

# Starts broker $1 on a free port, pinned to its CPUs; sets BROKER_PID and BROKER_PORT.
start_broker() { start_limited_broker "$1" "$(broker_cpus "$1")"; }

# Stops the current broker; sets STOP_STATE to "exited" (stopped on SIGTERM), "killed"
# (needed SIGKILL) or "crashed" (was already gone).
stop_broker() {
    local pid=$BROKER_PID
    BROKER_PID=""
    stop_pid "$pid"
}

scenario_args() {
    case $1 in
    fanin) echo "--publishers 8 --subscribers 1 --drain 2" ;;
    fanout) echo "--publishers 1 --subscribers $FANOUT_SUBSCRIBERS --drain 2" ;;
    qos1) echo "--publishers 8 --window 64 --drain 20" ;;
    latency) echo "--publishers 1 --rate 1000 --drain 2" ;;
    idle) echo "--connections $IDLE_CONNECTIONS --concurrency 32" ;;
    connrate) echo "--concurrency 16" ;;
    esac
}

# The figures tabulated per scenario: key and whether higher is better.
scenario_metrics() {
    case $1 in
    fanin | fanout) echo "msg_per_s:higher delivered_pct:higher" ;;
    qos1) echo "msg_per_s:higher delivered_pct:higher" ;;
    latency) echo "p50_us:lower p99_us:lower p999_us:lower" ;;
    idle) echo "bytes_per_conn:lower conn_per_s:higher" ;;
    connrate) echo "conn_per_s:higher p99_us:lower" ;;
    esac
}

# Flags results that show misbehaviour (loss, errors, failed verification, failures).
check_result() { # broker scenario line
    local broker=$1 scenario=$2 line=$3 field value
    # QoS 0 messages may be dropped by design: report them apart from real faults.
    if grep -q " qos=0 " <<<"$line"; then
        value=$(grep -o " delivered_pct=[0-9.]*" <<<"$line" | cut -d= -f2 || true)
        if [[ -n $value && $value != 100.0 ]]; then
            echo "$broker $scenario: QoS 0 delivered ${value}% (drops allowed)" >>"$WORK/qos0-drops.txt"
        fi
    fi
    for field in errors failed unexpected_acks duplicates out_of_order; do
        value=$(grep -o " $field=[0-9]*" <<<"$line" | cut -d= -f2 || true)
        if [[ -n $value && $value != 0 ]]; then
            echo "$broker $scenario: $field=$value" >>"$ANOMALIES"
        fi
    done
    if grep -q "verified=FAILED" <<<"$line"; then
        echo "$broker $scenario: QoS 1 verification FAILED ($(grep -o ' acked=[0-9]*' <<<"$line" | tr -d ' ') but $(grep -o ' lost=[0-9]*' <<<"$line" | tr -d ' '))" >>"$ANOMALIES"
    fi
    if grep -q "first_error=" <<<"$line"; then
        echo "$broker $scenario: $(grep -o 'first_error=.*' <<<"$line")" >>"$ANOMALIES"
    fi
}

run_one() { # broker scenario round
    local broker=$1 scenario=$2 round=$3 extra="" line status duration=$DURATION
    if ! start_broker "$broker"; then
        echo "$broker $scenario round $round: broker did not start" >>"$ANOMALIES"
        stop_broker
        return
    fi
    [[ $scenario == idle ]] && extra="--pid $BROKER_PID" && duration=$((DURATION * 6))
    # shellcheck disable=SC2046
    line=$(timeout "$RUN_TIMEOUT" taskset -c "$(load_cpus "$broker")" "$TARGET/release/mqtt-load" "$scenario" \
        --host 127.0.0.1 --port "$BROKER_PORT" --broker "$broker" --threads 1 \
        --duration "$duration" $(scenario_args "$scenario") $extra \
        2>>"$WORK/load-$broker-$scenario.log" | grep '^RESULT' || true)
    stop_broker
    status=$STOP_STATE
    if [[ -z $line ]]; then
        echo "$broker $scenario round $round: no result (load tool timed out or failed)" >>"$ANOMALIES"
    else
        echo "$round $line" >>"$RESULTS"
        check_result "$broker" "$scenario" "$line"
        log "round $round $broker $scenario: ${line#RESULT }"
    fi
    if [[ $status != exited ]]; then
        echo "$broker $scenario round $round: broker $status" >>"$ANOMALIES"
    fi
}

median() { sort -g | awk '{v[NR]=$1} END {if (NR==0) print "-"; else if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }

value_of() { # broker scenario key
    grep " scenario=$2 broker=$1 " "$RESULTS" | grep -o " $3=[^ ]*" | cut -d= -f2 | median
}

print_table() {
    local present=() b
    for b in $BROKERS; do present+=("$b"); done
    printf '\n| scenario | figure | better |'
    for b in "${present[@]}"; do printf ' %s |' "$b"; done
    for b in "${present[@]}"; do [[ $b != ours ]] && printf ' ours/%s |' "$b"; done
    printf '\n|---|---|---|'
    for b in "${present[@]}"; do printf -- '---:|'; done
    for b in "${present[@]}"; do [[ $b != ours ]] && printf -- '---:|'; done
    printf '\n'
    local scenario metric key better ours_value v
    for scenario in $SCENARIOS; do
        for metric in $(scenario_metrics "$scenario"); do
            key=${metric%%:*}
            better=${metric##*:}
            printf '| %s | %s | %s |' "$scenario" "$key" "$better"
            ours_value=$(value_of ours "$scenario" "$key")
            for b in "${present[@]}"; do printf ' %s |' "$(value_of "$b" "$scenario" "$key")"; done
            for b in "${present[@]}"; do
                [[ $b == ours ]] && continue
                v=$(value_of "$b" "$scenario" "$key")
                awk -v a="$ours_value" -v b="$v" 'BEGIN {
                    if (a == "-" || b == "-" || b + 0 == 0) printf " - |"; else printf " %.2f |", a / b }'
            done
            printf '\n'
        done
    done
}

main() {
    BROKERS=$(available_brokers)
    command -v taskset >/dev/null || { log "taskset (util-linux) is required"; exit 1; }
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    build_release
    log "brokers: $BROKERS; scenarios: $SCENARIOS; $ROUNDS rounds of ${DURATION}s; fd limit $(ulimit -n)"
    local started=$SECONDS scenario round i n order
    for scenario in $SCENARIOS; do
        for round in $(seq 1 "$ROUNDS"); do
            # Rotate the order every round so no broker always runs first (or last).
            read -r -a order <<<"$BROKERS"
            n=${#order[@]}
            for i in $(seq 0 $((n - 1))); do
                run_one "${order[$(((i + round - 1) % n))]}" "$scenario" "$round"
            done
        done
    done
    log "finished in $((SECONDS - started)) s"
    echo "## Medians of $ROUNDS rounds (${DURATION} s runs; idle: $IDLE_CONNECTIONS connections)"
    print_table
    echo
    if [[ -s $ANOMALIES ]]; then
        echo "## Anomalies"
        sed 's/^/- /' "$ANOMALIES"
    else
        echo "## Anomalies: none"
    fi
    if [[ -s $WORK/qos0-drops.txt ]]; then
        echo
        echo "## QoS 0 messages not delivered within the run and its drain time"
        sed 's/^/- /' "$WORK/qos0-drops.txt"
    fi
    echo
    echo "## Raw results"
    sed 's/^/    round /' "$RESULTS"
}

main "$@"
