# lib-brokers.sh: what the broker scripts share (sourced by compare-brokers.sh, perf-sweep.sh and
# many-connections.sh, not run): free ports, broker configurations under the limits of
# compare-brokers.sh, starting a broker pinned to CPUs and stopping it by PID, building the
# release binaries.
#
# The sourcing script defines ROOT, TARGET (cargo target directory), WORK (scratch directory),
# MOSQUITTO and RUMQTTD (paths; RUMQTTD only if it runs rumqttd) and `log`, and keeps the PID of
# the running broker in BROKER_PID. Brokers with a TLS listener use the certificates that
# make_test_certificates writes to TLS_DIR.
# shellcheck shell=bash

# Prints a TCP port that is free on 127.0.0.1 now.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Waits up to 5 s until port $1 on 127.0.0.1 accepts connections; fails early if process $2
# is gone.
wait_for_port() { # port pid
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

# Stops process $1 (a child of this shell): SIGTERM, up to 5 s to exit, then SIGKILL. Sets
# STOP_STATE to "none" (no PID given), "crashed" (was already gone), "exited" (stopped on
# SIGTERM) or "killed" (needed SIGKILL).
stop_pid() { # pid
    local pid=$1
    STOP_STATE=none
    [[ -n $pid ]] || return 0
    if ! kill -0 "$pid" 2>/dev/null; then
        wait "$pid" 2>/dev/null || true
        STOP_STATE=crashed
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    STOP_STATE=exited
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
        STOP_STATE=killed
    fi
    wait "$pid" 2>/dev/null || true
}

# Makes a test CA and a server certificate for 127.0.0.1 and localhost in directory $1 with
# the `openssl` command: ca.pem, server.pem and server.key, all RSA 2048 (so that the TLS 1.2
# ECDHE-RSA suites, Tasmota's ECDHE-RSA-AES128-GCM-SHA256 among them, apply). Valid for two
# days; made at run time, never kept. The files are readable by all and the directories
# searchable, since mosquitto started as root reads them as its own user.
make_test_certificates() { # dir
    local dir=$1
    mkdir -p "$dir"
    (
        cd "$dir" || exit 1
        openssl req -x509 -nodes -newkey rsa:2048 -keyout ca.key -out ca.pem -days 2 \
            -subj "/CN=compare-brokers test CA" 2>/dev/null
        printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >server.ext
        openssl req -nodes -newkey rsa:2048 -keyout server.key -out server.csr \
            -subj "/CN=localhost" 2>/dev/null
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
            -out server.pem -days 2 -extfile server.ext 2>/dev/null
        chmod 644 server.key server.pem ca.pem
    )
    chmod 755 "$dir"
    chmod 711 "$(dirname "$dir")"
}

# Writes to file $2 what every run of ours and mosquitto shares: a listener on 127.0.0.1 port
# $1, anonymous clients allowed, no persistence, no connection limit. Listener kind $3: `tcp`
# (default), `tls` (the certificate of TLS_DIR, no client certificates asked for) or `ws`
# (MQTT over WebSocket).
listener_conf() { # port file [kind]
    cat >"$2" <<EOF
listener $1 127.0.0.1
allow_anonymous true
persistence false
max_connections -1
EOF
    case ${3:-tcp} in
    tls) printf 'certfile %s\nkeyfile %s\n' "$TLS_DIR/server.pem" "$TLS_DIR/server.key" >>"$2" ;;
    ws) echo 'protocol websockets' >>"$2" ;;
    esac
}

# Appends to file $1 the per-client limits of compare-brokers.sh in ours' and mosquitto's
# syntax: 100 QoS 1 messages in flight, 1,000,000 queued messages, messages up to 1 MiB.
limits_conf() { # file
    cat >>"$1" <<EOF
max_inflight_messages 100
max_queued_messages 1000000
message_size_limit 1048576
EOF
}

# Appends to file $1 mosquitto's socket and log settings: TCP_NODELAY (its default adds
# delayed-ACK stalls), no logging.
mosquitto_io_conf() { # file
    printf 'set_tcp_nodelay true\nlog_dest none\n' >>"$1"
}

# Writes our broker's configuration under the limits of compare-brokers.sh to file $2 (port $1,
# listener kind $3 as listener_conf's).
ours_conf() { # port file [kind]
    listener_conf "$1" "$2" "${3:-tcp}"
    limits_conf "$2"
}

# Writes mosquitto's configuration under the limits of compare-brokers.sh to file $2 (port $1,
# listener kind $3 as listener_conf's), including the 16 MiB queued-bytes bound that ours has
# built in. mosquitto 2.0 refuses to start with WebSocket listeners only: a `ws` configuration
# gets a second, plain listener on a free port that nobody uses.
mosquitto_conf() { # port file [kind]
    listener_conf "$1" "$2" "${3:-tcp}"
    limits_conf "$2"
    echo 'max_queued_bytes 16777216' >>"$2"
    mosquitto_io_conf "$2"
    if [[ ${3:-tcp} == ws ]]; then
        echo "listener $(free_port) 127.0.0.1" >>"$2"
    fi
}

# Writes rumqttd's configuration under the limits of compare-brokers.sh to file $2 (port $1):
# listener kind $3 `tcp` (default) is its v4 (MQTT 3.1.1) listener, `tls` the same with the
# certificate of TLS_DIR (rustls; no client certificates asked for), `ws` its WebSocket
# listener (also MQTT 3.1.1).
rumqttd_conf() { # port file [kind]
    local section=v4 name=v4-1
    if [[ ${3:-tcp} == ws ]]; then section=ws name=ws-1; fi
    cat >"$2" <<EOF
id = 0

[router]
id = 0
max_connections = 20010
max_outgoing_packet_count = 200
max_segment_size = 104857600
max_segment_count = 10

[$section.1]
name = "$name"
listen = "127.0.0.1:$1"
next_connection_delay_ms = 0
    [$section.1.connections]
    connection_timeout_ms = 60000
    max_payload_size = 1048576
    max_inflight_count = 100
    dynamic_filters = true
EOF
    if [[ ${3:-tcp} == tls ]]; then
        cat >>"$2" <<EOF
    [$section.1.tls]
    certpath = "$TLS_DIR/server.pem"
    keypath = "$TLS_DIR/server.key"
EOF
    fi
}

# Starts broker $1 (ours, ours-2cpu, ours-scraped, ours-base, mosquitto or rumqttd) in the
# background with configuration file $2, pinned to CPUs $3, its output appended to
# $WORK/$1.log; sets BROKER_PID. `ours-base` is another build of ours ($OURS_BASE, e.g. of the
# commit before a change); `ours-scraped` is ours with its /metrics (on $HTTP_PORT) fetched by
# curl every second, as Prometheus would, `ours-page` ours with its web page open on `#`
# (curl reading the stream of the page's topic tree), and `ours-watched` both at once, for as
# long as it runs.
launch_broker() { # broker conf cpus
    case $1 in
    ours | ours-2cpu | ours-scraped | ours-page | ours-watched)
        RUST_LOG=warn taskset -c "$3" "$TARGET/release/mqtt-broker" -c "$2" >>"$WORK/$1.log" 2>&1 &
        ;;
    ours-base)
        RUST_LOG=warn taskset -c "$3" "$OURS_BASE" -c "$2" >>"$WORK/$1.log" 2>&1 &
        ;;
    mosquitto) taskset -c "$3" "$MOSQUITTO" -c "$2" >>"$WORK/$1.log" 2>&1 & ;;
    rumqttd) taskset -c "$3" "$RUMQTTD" -q -c "$2" >>"$WORK/$1.log" 2>&1 & ;;
    esac
    BROKER_PID=$!
    if [[ $1 == ours-scraped || $1 == ours-watched ]]; then
        (
            while kill -0 "$BROKER_PID" 2>/dev/null; do
                curl -s -o /dev/null "http://127.0.0.1:$HTTP_PORT/metrics" || true
                sleep 1
            done
        ) &
    fi
    if [[ $1 == ours-page || $1 == ours-watched ]]; then
        (
            jar=$(mktemp)
            for _ in $(seq 50); do
                curl -s -c "$jar" -o /dev/null "http://127.0.0.1:$HTTP_PORT/api/session" && break
                sleep 0.1
            done
            # What the page's topic tree reads: every message, as server-sent events.
            curl -s -N -b "$jar" -o /dev/null "http://127.0.0.1:$HTTP_PORT/api/events?filter=%23&sample=1" || true
            rm -f "$jar"
        ) &
    fi
}

# Starts broker $1 on a free port under the limits of compare-brokers.sh, pinned to CPUs $2,
# its listener of kind $3 (`tcp`, the default; `tls` or `ws`, see listener_conf), and waits
# until it listens; sets BROKER_PID and BROKER_PORT.
start_limited_broker() { # broker cpus [kind]
    local conf kind=${3:-tcp}
    BROKER_PORT=$(free_port)
    case $1 in
    rumqttd)
        conf=$WORK/$1-$BROKER_PORT.toml # rumqttd picks the format by extension
        rumqttd_conf "$BROKER_PORT" "$conf" "$kind"
        ;;
    mosquitto)
        conf=$WORK/$1-$BROKER_PORT.conf
        mosquitto_conf "$BROKER_PORT" "$conf" "$kind"
        ;;
    *)
        conf=$WORK/$1-$BROKER_PORT.conf
        ours_conf "$BROKER_PORT" "$conf" "$kind"
        if [[ $1 == ours-scraped || $1 == ours-page || $1 == ours-watched ]]; then
            HTTP_PORT=$(free_port)
            printf 'listener %s 127.0.0.1\nprotocol http\nallow_anonymous true\n' "$HTTP_PORT" >>"$conf"
        fi
        ;;
    esac
    launch_broker "$1" "$conf" "$2"
    wait_for_port "$BROKER_PORT" "$BROKER_PID"
}

# Prints the brokers of $BROKERS that are installed, logging the others as skipped.
available_brokers() {
    local available=() b
    for b in $BROKERS; do
        case $b in
        mosquitto) [[ -x $MOSQUITTO ]] || { log "skipping mosquitto: $MOSQUITTO not found"; continue; } ;;
        rumqttd) [[ -x $RUMQTTD ]] || { log "skipping rumqttd: $RUMQTTD not found"; continue; } ;;
        ours-base) [[ -x ${OURS_BASE:-} ]] || { log "skipping ours-base: set OURS_BASE to a mqtt-broker binary"; continue; } ;;
        esac
        available+=("$b")
    done
    echo "${available[*]}"
}

# Builds mqtt-broker and mqtt-load (release, locked) into $TARGET.
build_release() {
    log "building mqtt-broker and mqtt-load (release) into $TARGET"
    (cd "$ROOT" && CARGO_TARGET_DIR=$TARGET cargo build --release --locked -q -p mqtt-broker -p mqtt-load)
}

# The bridge benchmarks' brokers (bridge-bench.sh, bridge-bench-clients.sh). The sourcing script
# keeps the PIDs it must stop in the array PIDS.

# Starts broker $1 with configuration file $2 on CPUs $3, listening on port $4; adds its PID to
# PIDS. Fails, showing its log, when it does not listen.
start_tracked() { # broker conf cpus port
    launch_broker "$1" "$2" "$3"
    PIDS+=("$BROKER_PID")
    wait_for_port "$4" "$BROKER_PID" || { log "$1 did not start"; cat "$WORK/$1.log" >&2; exit 1; }
}

# Starts a remote broker $1 (ours or mosquitto) on CPU 1 and, unless $3 is `direct`, a local
# one of the same kind on CPU 0 that bridges `load/#` out to it at QoS $2, and waits until the
# bridge is up (its state reads 1 on the remote broker). Sets REMOTE_PORT, and LOCAL_PORT (the
# remote port when direct).
start_bridge_pair() { # broker qos mode
    local conf=ours_conf
    [[ $1 == ours ]] || conf=mosquitto_conf
    REMOTE_PORT=$(free_port)
    $conf "$REMOTE_PORT" "$WORK/$1-remote.conf"
    start_tracked "$1" "$WORK/$1-remote.conf" 1 "$REMOTE_PORT"
    LOCAL_PORT=$REMOTE_PORT
    [[ $3 != direct ]] || return 0
    LOCAL_PORT=$(free_port)
    $conf "$LOCAL_PORT" "$WORK/$1-local.conf"
    printf 'connection bench\naddress 127.0.0.1:%s\nremote_clientid bench\ncleansession true\ntopic load/# out %s\n' \
        "$REMOTE_PORT" "$2" >>"$WORK/$1-local.conf"
    start_tracked "$1" "$WORK/$1-local.conf" 0 "$LOCAL_PORT"
    timeout 20 mosquitto_sub -p "$REMOTE_PORT" -C 1 -t '$SYS/broker/connection/bench/state' \
        | grep -q 1 || { log "the bridge did not come up"; exit 1; }
}

# What the benchmarks that keep PIDS share: on exit, stop every tracked broker and remove WORK
# (kept with KEEP_LOGS=1). Set with `trap cleanup_tracked EXIT`.
cleanup_tracked() {
    local pid
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    if [[ ${KEEP_LOGS:-0} == 1 ]]; then echo "logs kept in $WORK" >&2; else rm -rf "$WORK"; fi
}

# The median of the numbers on standard input, one per line (0 for none).
median() { sort -n | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print 0}'; }
