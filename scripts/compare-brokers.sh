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
# or refusals to stop are listed as anomalies. A broker that cannot run a scenario (e.g. a
# rumqttd built without websockets) shows `skipped` in the table, with the reason below it.
#
# Scenarios (SCENARIOS, run in the order given; the default is the first six):
#   fanin      QoS 0, 8 publishers -> 1 subscriber (`#`), as fast as possible; msg/s delivered.
#   fanout     QoS 0, 1 publisher -> FANOUT_SUBSCRIBERS subscribers.
#   qos1       QoS 1, 8 publishers -> 1 subscriber, window 64 per publisher.
#   latency    QoS 0 at 1000 msg/s; end-to-end latency percentiles.
#   idle       IDLE_CONNECTIONS idle subscribed connections; broker RSS growth per connection.
#   connrate   connect/CONNACK/disconnect with 16 workers; connections per second.
#   qos1w-fanin-wN   QoS 1, 8 publishers -> 1 subscriber, N messages in flight per publisher;
#   qos1w-fanout-wN  QoS 1, 1 publisher -> FANOUT_SUBSCRIBERS subscribers, window N; both
#                    report delivered msg/s and lost (must be 0). `qos1w` stands for both at
#                    every window of QOS1_WINDOWS.
#   devices    DEVICES clients, each publishing DEVICE_RATE msg/s at QoS 1 with window 1 on
#              `tele/device-<i>/SENSOR`, one subscriber on `tele/+/SENSOR` (two mqtt-load
#              processes, `pub` and `sub` modes, both on the load CPUs); DEVICE_RATE x
#              DURATION messages per device: delivered %, lost, p50/p99 latency.
#   TLS (listeners with a test CA and an RSA 2048 server certificate made with `openssl` in the
#   scratch directory at run time; clients check the certificate against that CA):
#   tls12-fanin    fanin over TLS 1.2 with ECDHE-RSA-AES128-GCM-SHA256 only (Tasmota's suite).
#   tls13-fanin    fanin over TLS 1.3 with TLS_AES_128_GCM_SHA256 only.
#   tls-qos1       qos1 over TLS (1.3, as negotiated).
#   tls-handshake  connrate over TLS (1.3 as negotiated) with session resumption off: full
#                  handshakes per second (resumed_pct must be 0).
#   tls-resume     the same with resumption on (mqtt-load's shared session cache);
#                  resumed_pct says how many handshakes the broker let resume.
#   tls-idle       idle over TLS: broker RSS growth per idle TLS connection.
#   `tls` stands for these six.
#   ws-fanin   fanin over WebSocket (ws://, path /mqtt): ours and mosquitto with
#              `protocol websockets`, rumqttd with its [ws] listener.
#   `all` stands for every scenario above.
#
# Usage: scripts/compare-brokers.sh            (from anywhere inside the workspace)
#   e.g. SCENARIOS="qos1w devices tls ws-fanin" scripts/compare-brokers.sh
# Environment: ROUNDS (3), DURATION seconds per run (5), IDLE_CONNECTIONS (10000),
#   FANOUT_SUBSCRIBERS (100, subscribers of the fanout scenario's one publisher),
#   SCENARIOS ("fanin fanout qos1 latency idle connrate"; see above), QOS1_WINDOWS ("1 16 64",
#   the windows of `qos1w`), QOS1_TARGET_RUMQTTD (1.3) and QOS1_TARGET_MOSQUITTO (10) (the
#   ratios of ours to theirs in delivered msg/s that the `qos1w` scenarios aim at; met or
#   missed is listed below the table), DEVICES (100) and DEVICE_RATE (10 msg/s per device) of
#   `devices`,
#   BROKERS ("ours mosquitto rumqttd"; also "ours-2cpu", "ours-scraped" (ours with /metrics
#   fetched every second), "ours-page" (ours with its web page's stream of `#` read),
#   "ours-watched" (both at once) and
#   "ours-base" with OURS_BASE set to
#   another mqtt-broker binary, e.g. the build of the commit before a change), BROKER_CPUS (0), LOAD_CPUS (1), RUMQTTD (path; default rumqttd on PATH or
#   /work/rumqttd-install/bin/rumqttd), MOSQUITTO (path), CARGO_TARGET_DIR, KEEP_LOGS=1.
# rumqttd (0.20.0, with rustls and websockets, its default features) installs with
#   `cargo install --root /work/rumqttd-install rumqttd`; with `--locked` it pins metrics 0.22.1,
#   which current compilers refuse (E0521), so the newest compatible 0.22.x is taken instead.
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
QOS1_WINDOWS=${QOS1_WINDOWS:-"1 16 64"}
DEVICES=${DEVICES:-100}
DEVICE_RATE=${DEVICE_RATE:-10}
QOS1_TARGET_RUMQTTD=${QOS1_TARGET_RUMQTTD:-1.3}
QOS1_TARGET_MOSQUITTO=${QOS1_TARGET_MOSQUITTO:-10}
BROKER_CPUS=${BROKER_CPUS:-0}
LOAD_CPUS=${LOAD_CPUS:-1}
WIDE_CPUS=0,1
RUN_TIMEOUT=$((DURATION * 4 + 60))

WORK=$(mktemp -d "${TMPDIR:-/tmp}/compare-brokers.XXXXXX")
RESULTS=$WORK/results.txt
ANOMALIES=$WORK/anomalies.txt
SKIPS=$WORK/skips.txt
NOTES=$WORK/notes.txt
TLS_DIR=$WORK/tls
: >"$RESULTS"
: >"$ANOMALIES"
: >"$SKIPS"
: >"$NOTES"
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

# Starts broker $1 on a free port, pinned to its CPUs, its listener of kind $2 (tcp, tls or
# ws); sets BROKER_PID and BROKER_PORT.
start_broker() { start_limited_broker "$1" "$(broker_cpus "$1")" "${2:-tcp}"; }

# Stops the current broker; sets STOP_STATE to "exited" (stopped on SIGTERM), "killed"
# (needed SIGKILL) or "crashed" (was already gone).
stop_broker() {
    local pid=$BROKER_PID
    BROKER_PID=""
    stop_pid "$pid"
}

# The scenarios SCENARIOS names, with the groups `qos1w`, `tls` and `all` spelled out.
expand_scenarios() {
    local s w out=()
    for s in $SCENARIOS; do
        case $s in
        qos1w)
            for w in $QOS1_WINDOWS; do out+=("qos1w-fanin-w$w"); done
            for w in $QOS1_WINDOWS; do out+=("qos1w-fanout-w$w"); done
            ;;
        tls) out+=(tls12-fanin tls13-fanin tls-qos1 tls-handshake tls-resume tls-idle) ;;
        all)
            out+=(fanin fanout qos1 latency idle connrate)
            for w in $QOS1_WINDOWS; do out+=("qos1w-fanin-w$w"); done
            for w in $QOS1_WINDOWS; do out+=("qos1w-fanout-w$w"); done
            out+=(devices tls12-fanin tls13-fanin tls-qos1 tls-handshake tls-resume tls-idle ws-fanin)
            ;;
        *) out+=("$s") ;;
        esac
    done
    echo "${out[*]}"
}

# Whether $1 names a known scenario.
known_scenario() {
    case $1 in
    fanin | fanout | qos1 | latency | idle | connrate | devices | ws-fanin) return 0 ;;
    tls12-fanin | tls13-fanin | tls-qos1 | tls-handshake | tls-resume | tls-idle) return 0 ;;
    qos1w-fanin-w[1-9]* | qos1w-fanout-w[1-9]*) [[ ${1##*-w} =~ ^[0-9]+$ ]] ;;
    *) return 1 ;;
    esac
}

# The listener a scenario needs: tcp, tls or ws.
scenario_listener() {
    case $1 in
    tls*) echo tls ;;
    ws-*) echo ws ;;
    *) echo tcp ;;
    esac
}

# The mqtt-load scenario or mode that runs a scenario.
scenario_mode() {
    case $1 in
    qos1w-fanin-* | tls-qos1) echo qos1 ;;
    qos1w-fanout-*) echo fanout ;;
    tls12-fanin | tls13-fanin | ws-fanin) echo fanin ;;
    tls-handshake | tls-resume) echo connrate ;;
    tls-idle) echo idle ;;
    *) echo "$1" ;;
    esac
}

scenario_args() {
    case $1 in
    fanin | ws-fanin) echo "--publishers 8 --subscribers 1 --drain 2" ;;
    fanout) echo "--publishers 1 --subscribers $FANOUT_SUBSCRIBERS --drain 2" ;;
    qos1 | tls-qos1) echo "--publishers 8 --window 64 --drain 20" ;;
    latency) echo "--publishers 1 --rate 1000 --drain 2" ;;
    idle | tls-idle) echo "--connections $IDLE_CONNECTIONS --concurrency 32" ;;
    connrate) echo "--concurrency 16" ;;
    qos1w-fanin-w*) echo "--publishers 8 --subscribers 1 --window ${1##*-w} --drain 20" ;;
    qos1w-fanout-w*) echo "--publishers 1 --subscribers $FANOUT_SUBSCRIBERS --qos 1 --window ${1##*-w} --drain 20" ;;
    tls12-fanin) echo "--publishers 8 --subscribers 1 --drain 2 --tls-version 1.2 --ciphers ECDHE-RSA-AES128-GCM-SHA256" ;;
    tls13-fanin) echo "--publishers 8 --subscribers 1 --drain 2 --tls-version 1.3 --ciphers TLS_AES_128_GCM_SHA256" ;;
    tls-handshake) echo "--concurrency 16 --no-tls-resume" ;;
    tls-resume) echo "--concurrency 16 --tls-resume" ;;
    esac
    case $(scenario_listener "$1") in
    tls) echo "--cafile $TLS_DIR/ca.pem" ;;
    ws) echo "--ws" ;;
    esac
}

# The figures tabulated per scenario: key and whether higher is better (`info`: no ratio).
scenario_metrics() {
    case $1 in
    fanin | fanout | ws-fanin | tls12-fanin | tls13-fanin) echo "msg_per_s:higher delivered_pct:higher" ;;
    qos1) echo "msg_per_s:higher delivered_pct:higher" ;;
    qos1w-* | tls-qos1) echo "msg_per_s:higher lost:lower delivered_pct:higher" ;;
    devices) echo "delivered_pct:higher lost:lower p50_us:lower p99_us:lower" ;;
    latency) echo "p50_us:lower p99_us:lower p999_us:lower" ;;
    idle | tls-idle) echo "bytes_per_conn:lower conn_per_s:higher" ;;
    connrate) echo "conn_per_s:higher p99_us:lower" ;;
    tls-handshake | tls-resume) echo "conn_per_s:higher p99_us:lower resumed_pct:info" ;;
    esac
}

# Why broker $1 cannot run scenario $2 (nothing when it can).
skip_reason() { # broker scenario
    local recorded
    recorded=$(grep "^$1 $2 " "$SKIPS" | head -n 1 | cut -d' ' -f3- || true)
    if [[ -n $recorded ]]; then echo "$recorded"; return; fi
    if [[ $(scenario_listener "$2") == tls && ! -s $TLS_DIR/server.pem ]]; then
        echo "no test certificate (is openssl installed?)"
    fi
}

# Records that broker $1 cannot run scenario $2, for reason $3 (once).
skip() { # broker scenario reason
    grep -q "^$1 $2 " "$SKIPS" || echo "$1 $2 $3" >>"$SKIPS"
    log "skipping $1 $2: $3"
}

# A RESULT line of mqtt-load with the name of our scenario in place of the tool's, and the
# figures the table needs that the tool does not print.
result_line() { # scenario line
    local line
    line="RESULT scenario=$1 ${2#RESULT scenario=* }"
    case $1 in
    tls-handshake | tls-resume)
        line+=$(awk -v l="$line" 'BEGIN {
            n = split(l, f, " "); c = 0; r = 0
            for (i = 1; i <= n; i++) {
                split(f[i], kv, "=")
                if (kv[1] == "connects") c = kv[2]
                if (kv[1] == "tls_resumed") r = kv[2]
            }
            pct = c > 0 ? r * 100 / c : 0
            printf " resumed_pct=%.1f", pct }')
        ;;
    esac
    echo "$line"
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
    value=$(grep -o " resumed_pct=[0-9.]*" <<<"$line" | cut -d= -f2 || true)
    if [[ $scenario == tls-handshake && -n $value && $value != 0.0 ]]; then
        echo "$broker $scenario: ${value}% of the handshakes resumed with resumption off" >>"$ANOMALIES"
    fi
    if [[ $scenario == tls-resume && $value == 0.0 ]]; then
        echo "$broker $scenario: no handshake resumed a session (the broker offers no resumption)" >>"$NOTES"
    fi
}

# Starts broker $1 with the listener scenario $2 needs; on failure records why (a skip when
# the broker lacks the feature, an anomaly otherwise) and fails.
start_for() { # broker scenario round
    local kind
    kind=$(scenario_listener "$2")
    start_broker "$1" "$kind" && return 0
    stop_broker
    if [[ $1 == rumqttd && $kind == ws ]] && grep -qi "websocket feature is disabled" "$WORK/$1.log" 2>/dev/null; then
        skip "$1" "$2" "this rumqttd build has no websockets"
    else
        echo "$1 $2 round $3: broker did not start ($kind listener)" >>"$ANOMALIES"
    fi
    return 1
}

# Records mqtt-load's RESULT line $4 (empty: none) of broker $1, scenario $2, round $3, and
# whether the broker stopped cleanly ($STOP_STATE).
record() { # broker scenario round line
    local status=$STOP_STATE
    if [[ -z $4 ]]; then
        echo "$1 $2 round $3: no result (load tool timed out or failed)" >>"$ANOMALIES"
    else
        echo "$3 $4" >>"$RESULTS"
        check_result "$1" "$2" "$4"
        log "round $3 $1 $2: ${4#RESULT }"
    fi
    if [[ $status != exited ]]; then
        echo "$1 $2 round $3: broker $status" >>"$ANOMALIES"
    fi
}

run_one() { # broker scenario round
    local broker=$1 scenario=$2 round=$3 extra="" line duration=$DURATION limit=$RUN_TIMEOUT mode reason
    reason=$(skip_reason "$broker" "$scenario")
    if [[ -n $reason ]]; then
        skip "$broker" "$scenario" "$reason"
        return
    fi
    if [[ $scenario == devices ]]; then
        run_devices "$broker" "$round"
        return
    fi
    start_for "$broker" "$scenario" "$round" || return 0
    mode=$(scenario_mode "$scenario")
    if [[ $mode == idle ]]; then
        extra="--pid $BROKER_PID"
        duration=$((DURATION * 6))
        # TLS handshakes are slower: time enough to open every connection.
        [[ $scenario == tls-idle ]] && duration=$((duration + IDLE_CONNECTIONS / 250))
        limit=$((duration + 60 > limit ? duration + 60 : limit))
    fi
    # shellcheck disable=SC2046,SC2086
    line=$(timeout "$limit" taskset -c "$(load_cpus "$broker")" "$TARGET/release/mqtt-load" "$mode" \
        --host 127.0.0.1 --port "$BROKER_PORT" --broker "$broker" --threads 1 \
        --duration "$duration" $(scenario_args "$scenario") $extra \
        2>>"$WORK/load-$broker-$scenario.log" | grep '^RESULT' || true)
    stop_broker
    [[ -n $line ]] && line=$(result_line "$scenario" "$line")
    record "$broker" "$scenario" "$round" "$line"
}

# Field $2 of RESULT line $1 (empty when absent).
field() { grep -o " $2=[^ ]*" <<<"$1" | head -n 1 | cut -d= -f2 || true; }

# The `devices` scenario: one `mqtt-load sub` on tele/+/SENSOR (QoS 1), then one
# `mqtt-load pub` of DEVICES clients at DEVICE_RATE msg/s each, QoS 1, window 1, DEVICE_RATE x
# DURATION messages each; both processes on the load CPUs. Their two RESULT lines make one.
run_devices() { # broker round
    local broker=$1 round=$2 cpus total per_device interval sub_pid pub_line sub_line line
    local err=$WORK/load-$broker-devices.log sub_err=$WORK/devices-sub.err sub_out=$WORK/devices-sub.out
    start_for "$broker" devices "$round" || return 0
    cpus=$(load_cpus "$broker")
    per_device=$((DEVICE_RATE * DURATION))
    total=$((DEVICES * per_device))
    interval=$(awk -v r="$DEVICE_RATE" 'BEGIN { printf "%g", 1000 / r }')
    : >"$sub_err"
    taskset -c "$cpus" "$TARGET/release/mqtt-load" sub --host 127.0.0.1 --port "$BROKER_PORT" \
        --broker "$broker" --threads 1 -c 1 --client-id devices-sub -t 'tele/+/SENSOR' -q 1 \
        --count "$total" --duration $((DURATION + 30)) >"$sub_out" 2>"$sub_err" &
    sub_pid=$!
    for _ in $(seq 1 100); do
        grep -q "clients subscribed" "$sub_err" && break
        kill -0 "$sub_pid" 2>/dev/null || break
        sleep 0.1
    done
    pub_line=$(timeout "$RUN_TIMEOUT" taskset -c "$cpus" "$TARGET/release/mqtt-load" pub \
        --host 127.0.0.1 --port "$BROKER_PORT" --broker "$broker" --threads 1 \
        -c "$DEVICES" --client-id 'device-%i' -t 'tele/device-%i/SENSOR' -q 1 --window 1 \
        -I "$interval" --count "$per_device" --duration $((DURATION + 20)) --drain 5 \
        2>>"$err" | grep '^RESULT' || true)
    # The subscriber ends once it has every message, or at its own deadline.
    for _ in $(seq 1 $(((DURATION + 40) * 10))); do
        kill -0 "$sub_pid" 2>/dev/null || break
        sleep 0.1
    done
    stop_pid "$sub_pid"
    sub_line=$(grep '^RESULT' "$sub_out" || true)
    cat "$sub_err" >>"$err"
    stop_broker
    line=""
    if [[ -n $pub_line && -n $sub_line ]]; then
        line=$(awk -v b="$broker" -v d="$DEVICES" -v r="$DEVICE_RATE" -v want="$total" \
            -v sent="$(field "$pub_line" sent)" -v acked="$(field "$pub_line" acked)" \
            -v uacks="$(field "$pub_line" unexpected_acks)" -v perr="$(field "$pub_line" errors)" \
            -v pfail="$(field "$pub_line" failed)" -v sfail="$(field "$sub_line" failed)" \
            -v recv="$(field "$sub_line" received)" -v uniq="$(field "$sub_line" unique)" \
            -v dup="$(field "$sub_line" duplicates)" -v ooo="$(field "$sub_line" out_of_order)" \
            -v serr="$(field "$sub_line" errors)" -v rate="$(field "$sub_line" msg_per_s)" \
            -v p50="$(field "$sub_line" p50_us)" -v p90="$(field "$sub_line" p90_us)" \
            -v p99="$(field "$sub_line" p99_us)" -v p999="$(field "$sub_line" p999_us)" \
            -v max="$(field "$sub_line" max_us)" 'BEGIN {
                lost = sent - uniq; if (lost < 0) lost = 0
                pct = sent > 0 ? uniq * 100 / sent : 100
                printf "RESULT scenario=devices broker=%s qos=1 devices=%d rate_per_device=%d", b, d, r
                printf " scheduled=%d sent=%d acked=%d received=%d unique=%d lost=%d", want, sent, acked, recv, uniq, lost
                printf " delivered_pct=%.1f duplicates=%d out_of_order=%d unexpected_acks=%d", pct, dup, ooo, uacks
                printf " failed=%d msg_per_s=%s p50_us=%s p90_us=%s p99_us=%s p999_us=%s max_us=%s", pfail + sfail, rate, p50, p90, p99, p999, max
                printf " errors=%d verified=%s", perr + serr, (lost == 0 && perr + serr == 0) ? "ok" : "FAILED"
                if (sent < want) printf " not_sent=%d", want - sent
            }')
        if [[ $(field "$line" not_sent) != "" ]]; then
            echo "$broker devices round $round: the devices sent only $(field "$line" sent) of $total messages in time" >>"$ANOMALIES"
        fi
    fi
    record "$broker" devices "$round" "$line"
}

median() { sort -g | awk '{v[NR]=$1} END {if (NR==0) print "-"; else if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }

value_of() { # broker scenario key
    # A broker without a result (skipped, or failed every round) gets "-".
    grep " scenario=$2 broker=$1 " "$RESULTS" | grep -o " $3=[^ ]*" | cut -d= -f2 | median || true
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
            for b in "${present[@]}"; do
                v=$(value_of "$b" "$scenario" "$key")
                [[ $v == - && -n $(skip_reason "$b" "$scenario") ]] && v=skipped
                printf ' %s |' "$v"
            done
            for b in "${present[@]}"; do
                [[ $b == ours ]] && continue
                v=$(value_of "$b" "$scenario" "$key")
                [[ $better == info ]] && v=-
                awk -v a="$ours_value" -v b="$v" 'BEGIN {
                    if (a == "-" || b == "-" || b + 0 == 0) printf " - |"; else printf " %.2f |", a / b }'
            done
            printf '\n'
        done
    done
}

# For the QoS 1 window scenarios: whether ours delivers at least QOS1_TARGET_RUMQTTD times
# rumqttd's and QOS1_TARGET_MOSQUITTO times mosquitto's messages per second (medians).
print_qos1_targets() {
    local scenario b target ours_value v lines=()
    for scenario in $SCENARIOS; do
        [[ $scenario == qos1w-* ]] || continue
        ours_value=$(value_of ours "$scenario" msg_per_s)
        for b in rumqttd mosquitto; do
            [[ " $BROKERS " == *" $b "* ]] || continue
            target=$QOS1_TARGET_RUMQTTD
            [[ $b == mosquitto ]] && target=$QOS1_TARGET_MOSQUITTO
            v=$(value_of "$b" "$scenario" msg_per_s)
            lines+=("$(awk -v s="$scenario" -v b="$b" -v a="$ours_value" -v v="$v" -v t="$target" 'BEGIN {
                if (a == "-" || v == "-" || v + 0 == 0) { printf "- %s: ours/%s not measured", s, b; exit }
                r = a / v
                verdict = (r >= t) ? "met" : "MISSED"
                printf "- %s: ours/%s %.2f (target %sx): %s", s, b, r, t, verdict }')")
        done
    done
    [[ ${#lines[@]} -gt 0 ]] || return 0
    echo
    echo "## QoS 1 window targets (delivered msg/s, medians)"
    printf '%s\n' "${lines[@]}"
}

main() {
    BROKERS=$(available_brokers)
    command -v taskset >/dev/null || { log "taskset (util-linux) is required"; exit 1; }
    SCENARIOS=$(expand_scenarios)
    local s
    for s in $SCENARIOS; do
        known_scenario "$s" || { log "unknown scenario $s"; exit 1; }
    done
    if [[ " $SCENARIOS" == *" tls"* ]]; then
        if command -v openssl >/dev/null; then
            make_test_certificates "$TLS_DIR" || log "could not make the test certificates"
        else
            log "openssl is not installed: the TLS scenarios are skipped"
        fi
    fi
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
    print_qos1_targets
    echo
    if [[ -s $ANOMALIES ]]; then
        echo "## Anomalies"
        sed 's/^/- /' "$ANOMALIES"
    else
        echo "## Anomalies: none"
    fi
    if [[ -s $SKIPS ]]; then
        echo
        echo "## Skipped"
        sed 's/^\([^ ]*\) \([^ ]*\) /\1 \2: /; s/^/- /' "$SKIPS"
    fi
    if [[ -s $NOTES ]]; then
        echo
        echo "## Notes"
        sort -u "$NOTES" | sed 's/^/- /'
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
