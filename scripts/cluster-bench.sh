#!/usr/bin/env bash
# cluster-bench.sh: a cluster of three of our nodes on NATS, against one node alone and against
# NATS's own MQTT support on the same NATS, in one run.
#
# Systems (each started fresh for each measurement):
#   single    one node of ours, no cluster: publishers and subscribers on it;
#   cluster   three nodes of ours joined over one nats-server -js: publishers on node A,
#             subscribers spread over nodes B and C (every message crosses NATS);
#   nats      nats-server's MQTT listener (3.1.1, QoS 0/1), publishers and subscribers on it.
# Loads (mqtt-load, MQTT 3.1.1):
#   fanout0   1 publisher, 50 subscribers of its topic, QoS 0, as fast as possible;
#   fanin0    8 publishers, 1 `#` subscriber, QoS 0 (cluster: publishers on A and B,
#             subscriber on C);
#   qos1      8 publishers with 64 in flight, 1 subscriber, QoS 1, checked for loss;
#   qos1r     the same at a fixed 30,000 msg/s in all (what every system carries): latency.
# Rounds alternate the systems. Prints medians of delivered msg/s and delivery, and the
# ratios cluster/nats and cluster/single.
#
# Two CPUs: every process shares them (nodes, nats-server and the load tool alike); the
# figures are of the whole machine, the same for every system.
#
# Environment: ROUNDS (3), DURATION (5 s), NATS_SERVER (path), CARGO_TARGET_DIR, KEEP_LOGS=1.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
NATS_SERVER=${NATS_SERVER:-$(command -v nats-server || echo /usr/bin/nats-server)}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/cluster-bench.XXXXXX")
RESULTS=$WORK/results.txt
: >"$RESULTS"
PIDS=()

trap cleanup_tracked EXIT
trap 'exit 130' INT TERM

log() { echo "[cluster-bench] $*" >&2; }

# shellcheck source=scripts/lib-brokers.sh
. "$ROOT/scripts/lib-brokers.sh"

# Starts command "$@" in the background with its output in $WORK/$NAME.log; adds its PID.
spawn() { # name command...
    local name=$1
    shift
    "$@" >"$WORK/$name.log" 2>&1 &
    PIDS+=("$!")
}

# nats-server with JetStream and its MQTT listener; sets NATS_PORT and NATS_MQTT_PORT.
start_nats() {
    NATS_PORT=$(free_port)
    NATS_MQTT_PORT=$(free_port)
    rm -rf "$WORK/js"
    cat >"$WORK/nats.conf" <<EOF
server_name: bench
listen: 127.0.0.1:$NATS_PORT
jetstream { store_dir: "$WORK/js" }
mqtt { listen: 127.0.0.1:$NATS_MQTT_PORT }
EOF
    spawn nats "$NATS_SERVER" -c "$WORK/nats.conf"
    wait_for_port "$NATS_MQTT_PORT" "${PIDS[-1]}" || { log "nats-server did not start"; cat "$WORK/nats.log" >&2; exit 1; }
}

# One node of ours named $1 on port $2, in the cluster on NATS_PORT when $3 is "cluster".
start_node() { # name port mode
    local conf=$WORK/$1.toml
    {
        printf 'persistence = false\n[[listener]]\nport = %s\nbind_address = "127.0.0.1"\n' "$2"
        printf 'allow_anonymous = true\n'
        if [[ $3 == cluster ]]; then
            printf '[cluster]\nnode = "%s"\nnats = ["nats://127.0.0.1:%s"]\n' "$1" "$NATS_PORT"
        fi
    } >"$conf"
    spawn "$1" "$TARGET/release/mqtt-broker" -c "$conf"
    wait_for_port "$2" "${PIDS[-1]}" || { log "node $1 did not start"; cat "$WORK/$1.log" >&2; exit 1; }
}

# One measurement: system $1, load $2.
measure() { # system load
    local system=$1 load=$2 pub sub line args
    case $system in
    single)
        pub=$(free_port)
        start_node single "$pub" single
        sub=$pub
        ;;
    cluster)
        start_nats
        local a b c
        a=$(free_port) b=$(free_port) c=$(free_port)
        start_node a "$a" cluster
        start_node b "$b" cluster
        start_node c "$c" cluster
        pub=$a sub=$b,$c
        [[ $load == fanin0 ]] && pub=$a,$b sub=$c
        ;;
    nats)
        start_nats
        pub=$NATS_MQTT_PORT sub=$NATS_MQTT_PORT
        ;;
    esac
    sleep 0.5 # every node has joined
    case $load in
    fanout0) args="fanout --publishers 1 --subscribers 50 --qos 0 --drain 3" ;;
    fanin0) args="fanin --publishers 8 --subscribers 1 --qos 0 --drain 3" ;;
    qos1) args="qos1 --publishers 8 --window 64 --drain 20" ;;
    qos1r) args="qos1 --publishers 8 --window 64 --drain 20 --rate 30000" ;;
    esac
    local pid before=0 after=0
    for pid in "${PIDS[@]}"; do before=$(awk -v a="$before" -v b="$(cpu_seconds "$pid")" 'BEGIN {print a + b}'); done
    # shellcheck disable=SC2086
    line=$("$TARGET/release/mqtt-load" $args --port "$pub" --sub-port "$sub" \
        --duration "$DURATION" --quiet --broker "$system" | grep '^RESULT' || true)
    for pid in "${PIDS[@]}"; do after=$(awk -v a="$after" -v b="$(cpu_seconds "$pid")" 'BEGIN {print a + b}'); done
    # Server CPU (every node and nats-server) per delivered message, in microseconds.
    local received
    received=$(grep -o ' received=[0-9]*' <<<"$line" | cut -d= -f2)
    line="$line cpu_us_per_msg=$(awk -v c="$(awk -v a="$after" -v b="$before" 'BEGIN {print a - b}')" -v n="${received:-0}" 'BEGIN {printf "%.2f", (n > 0) ? c * 1e6 / n : 0}')"
    echo "$system $load $line" >>"$RESULTS"
    log "$system $load: $(grep -o 'msg_per_s=[0-9.]*' <<<"$line") $(grep -o 'delivered_pct=[0-9.]*' <<<"$line") $(grep -o 'cpu_us_per_msg=[0-9.]*' <<<"$line")"
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    PIDS=()
}

# CPU seconds (user + system) process $1 has used so far.
cpu_seconds() { # pid
    awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat" 2>/dev/null || echo 0
}

# The median of field $3 over the rounds of system $1, load $2.
figure() { # system load field
    grep "^$1 $2 " "$RESULTS" | grep -o " $3=[0-9.]*" | cut -d= -f2 | median
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {print (b > 0) ? a / b : 0}'; }

main() {
    build_release
    log "$ROUNDS rounds of ${DURATION}s; $("$NATS_SERVER" --version 2>&1 | head -1)"
    for round in $(seq "$ROUNDS"); do
        for load in fanout0 fanin0 qos1 qos1r; do
            for system in cluster nats single; do
                log "round $round"
                measure "$system" "$load"
            done
        done
    done
    echo
    printf '%-8s %12s %12s %12s %14s %15s %s\n' load single cluster nats cluster/nats cluster/single 'delivered%(s/c/n)'
    for load in fanout0 fanin0 qos1 qos1r; do
        local s c n
        s=$(figure single "$load" msg_per_s)
        c=$(figure cluster "$load" msg_per_s)
        n=$(figure nats "$load" msg_per_s)
        printf '%-8s %12.0f %12.0f %12.0f %14.2f %15.2f %s/%s/%s\n' "$load" "$s" "$c" "$n" \
            "$(ratio "$c" "$n")" "$(ratio "$c" "$s")" \
            "$(figure single "$load" delivered_pct)" "$(figure cluster "$load" delivered_pct)" \
            "$(figure nats "$load" delivered_pct)"
    done
    echo
    printf '%-8s %12s %12s %12s   (server CPU per delivered message, µs: all nodes and nats-server)\n' load single cluster nats
    for load in fanout0 fanin0 qos1 qos1r; do
        printf '%-8s %12s %12s %12s\n' "$load" "$(figure single "$load" cpu_us_per_msg)" \
            "$(figure cluster "$load" cpu_us_per_msg)" "$(figure nats "$load" cpu_us_per_msg)"
    done
    echo
    printf '%-8s %12s %12s %12s   (p99 publish-to-delivery latency, µs)\n' load single cluster nats
    printf '%-8s %12s %12s %12s\n' qos1r "$(figure single qos1r p99_us)" \
        "$(figure cluster qos1r p99_us)" "$(figure nats qos1r p99_us)"
    echo
    # QoS 0 may be dropped by design; a lost QoS 1 message or a failed check is a fault.
    grep -h " qos=1 .*lost=[1-9]\|verified=FAILED\|errors=[1-9]" "$RESULTS" | sed 's/^/anomaly: /' || true
}

main "$@"
