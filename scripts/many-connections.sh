#!/usr/bin/env bash
# many-connections.sh: holds CONNECTIONS (100,000) idle, subscribed MQTT connections on one
# broker (ours, and mosquitto for comparison), reports the broker's resident memory per
# connection, then checks that a normal client is still served while they are held: a
# publish/subscribe round trip at 1,000 msg/s for 3 s (`mqtt-load latency`).
#
# Loopback to one port gives ~28k ephemeral ports per source address, so the connections come
# from SOURCES local addresses (127.1.R.1 .. 127.1.R.SOURCES, all of 127/8 is local; R changes
# with every broker run so the previous run's TIME_WAIT sockets do not take the ports). The file
# limit is raised inside this script (root with CAP_SYS_RESOURCE may raise the hard limit) and
# on the broker with prlimit. Where the hard limit cannot be raised (a container without
# CAP_SYS_RESOURCE), every process is held to it: the run is then capped at the limit less
# FD_RESERVE, says so (`capped_by_fd_limit=...`), and the bytes per connection measured there
# are what a 100k run would be extrapolated from. Our broker has no connection limit by
# default; mosquitto gets `max_connections -1`.
#
# Every process started here is pinned (broker: BROKER_CPUS, load tool: LOAD_CPUS), bounded by
# `timeout`, and stopped by its PID. A watchdog stops the run if the machine's available memory
# falls under MIN_AVAILABLE_MB.
#
# Output: progress on stderr; on stdout the RESULT lines of `mqtt-load idle` and of the probe,
# then one summary line per broker:
#   RESULT scenario=many-connections broker=ours connections=100000 failed=0 connect_s=...
#     conn_per_s=... bytes_per_conn=... still_open=... probe_delivered_pct=... probe_p99_us=...
#
# Usage: scripts/many-connections.sh          (from anywhere inside the workspace)
# Environment: CONNECTIONS (100000), BROKERS ("ours mosquitto"), SOURCES (8), CONCURRENCY (64),
#   CONNECT_SECONDS (120, the longest connecting may take), HOLD (20 s held after measuring),
#   BROKER_CPUS (0), LOAD_CPUS (1), MIN_AVAILABLE_MB (4096), FD_RESERVE (200 descriptors kept
#   for the processes' own files), MOSQUITTO (path), CARGO_TARGET_DIR, KEEP_LOGS=1.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
CONNECTIONS=${CONNECTIONS:-100000}
BROKERS=${BROKERS:-"ours mosquitto"}
SOURCES=${SOURCES:-8}
CONCURRENCY=${CONCURRENCY:-64}
CONNECT_SECONDS=${CONNECT_SECONDS:-120}
HOLD=${HOLD:-20}
BROKER_CPUS=${BROKER_CPUS:-0}
LOAD_CPUS=${LOAD_CPUS:-1}
MIN_AVAILABLE_MB=${MIN_AVAILABLE_MB:-4096}
MOSQUITTO=${MOSQUITTO:-$(command -v mosquitto || echo /usr/sbin/mosquitto)}
FD_RESERVE=${FD_RESERVE:-200}
FILE_LIMIT=$((CONNECTIONS + FD_RESERVE))
CAPPED=
RUN_TIMEOUT=$((CONNECT_SECONDS + HOLD + 60))

WORK=$(mktemp -d "${TMPDIR:-/tmp}/many-connections.XXXXXX")
BROKER_PID=""
LOAD_PID=""
RUN=0

log() { echo "[many-connections] $*" >&2; }

# shellcheck source=scripts/lib-brokers.sh
. "$ROOT/scripts/lib-brokers.sh"

cleanup() {
    stop_pid "$LOAD_PID"
    stop_pid "$BROKER_PID"
    if [[ ${KEEP_LOGS:-0} == 1 ]]; then
        log "logs kept in $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

available_mb() { awk '/^MemAvailable:/ {print int($2 / 1024)}' /proc/meminfo; }

# Starts broker $1 pinned to BROKER_CPUS on a free port; sets BROKER_PID and BROKER_PORT.
start_broker() {
    local name=$1 conf
    BROKER_PORT=$(free_port)
    conf=$WORK/$name-$BROKER_PORT.conf
    # No per-client limits: each broker's defaults.
    listener_conf "$BROKER_PORT" "$conf"
    if [[ $name == mosquitto ]]; then mosquitto_io_conf "$conf"; fi
    launch_broker "$name" "$conf" "$BROKER_CPUS"
    prlimit --pid "$BROKER_PID" --nofile="$FILE_LIMIT:$FILE_LIMIT" 2>/dev/null || true
    wait_for_port "$BROKER_PORT" "$BROKER_PID"
}

source_addrs() { # run number
    local i list=""
    for i in $(seq 1 "$SOURCES"); do list+="${list:+,}127.1.$1.$i"; done
    echo "$list"
}

field() { grep -o " $2=[^ ]*" <<<"$1" | head -1 | cut -d= -f2 || true; }

run_broker() { # name
    local name=$1 idle_out idle_err probe="" idle="" mem_start mem_low waited=0
    RUN=$((RUN + 1))
    idle_out=$WORK/idle-$name.out
    idle_err=$WORK/idle-$name.err
    if ! start_broker "$name"; then
        log "$name did not start"
        echo "RESULT scenario=many-connections broker=$name error=did_not_start"
        stop_pid "$BROKER_PID"
        BROKER_PID=""
        return
    fi
    : >"$idle_err"
    mem_start=$(available_mb)
    mem_low=$mem_start
    log "$name (pid $BROKER_PID, port $BROKER_PORT): opening $CONNECTIONS connections from $SOURCES source addresses"
    timeout "$RUN_TIMEOUT" taskset -c "$LOAD_CPUS" "$TARGET/release/mqtt-load" idle \
        --host 127.0.0.1 --port "$BROKER_PORT" --broker "$name" --threads 1 \
        --connections "$CONNECTIONS" --concurrency "$CONCURRENCY" --duration "$CONNECT_SECONDS" \
        --hold "$HOLD" --pid "$BROKER_PID" --source-addrs "$(source_addrs "$RUN")" \
        >"$idle_out" 2>"$idle_err" &
    LOAD_PID=$!
    # Wait until the connections are held (or the run ends), watching the memory.
    while kill -0 "$LOAD_PID" 2>/dev/null && ! grep -q "idle: holding" "$idle_err"; do
        local now
        now=$(available_mb)
        ((now < mem_low)) && mem_low=$now
        if ((now < MIN_AVAILABLE_MB)); then
            log "available memory ${now} MiB < ${MIN_AVAILABLE_MB} MiB: stopping the run"
            stop_pid "$LOAD_PID"
            break
        fi
        sleep 0.5
        waited=$((waited + 1))
        ((waited % 20 == 0)) && log "$name: $(tail -c 300 "$idle_err" | tr '\r' '\n' | grep -v '^$' | tail -1)"
    done
    if grep -q "idle: holding" "$idle_err"; then
        log "$name: $(grep 'idle: holding' "$idle_err"); broker RSS $(awk '/^VmRSS/ {print $2, $3}' "/proc/$BROKER_PID/status")"
        log "$name: probing with a publish/subscribe round trip (latency, 1,000 msg/s, 3 s)"
        probe=$(timeout 30 taskset -c "$LOAD_CPUS" "$TARGET/release/mqtt-load" latency \
            --host 127.0.0.1 --port "$BROKER_PORT" --broker "$name-probe" --threads 1 \
            --duration 3 --drain 2 --rate 1000 --quiet 2>>"$WORK/probe-$name.err" |
            grep '^RESULT' || true)
        now=$(available_mb)
        ((now < mem_low)) && mem_low=$now
    fi
    wait "$LOAD_PID" 2>/dev/null || true
    LOAD_PID=""
    idle=$(grep '^RESULT' "$idle_out" || true)
    if ! kill -0 "$BROKER_PID" 2>/dev/null; then
        log "$name: broker is gone (crashed?)"
    fi
    stop_pid "$BROKER_PID"
    BROKER_PID=""
    [[ -n $idle ]] && echo "$idle"
    [[ -n $probe ]] && echo "$probe"
    printf 'RESULT scenario=many-connections broker=%s target=%s fd_limit=%s%s' \
        "$name" "$TARGET_CONNECTIONS" "$(ulimit -n)" "${CAPPED:+ capped_by_fd_limit=$CAPPED}"
    printf ' connections=%s failed=%s connect_s=%s conn_per_s=%s' \
        "$(field "$idle" connections)" "$(field "$idle" failed)" \
        "$(field "$idle" connect_s)" "$(field "$idle" conn_per_s)"
    printf ' rss_after_kb=%s bytes_per_conn=%s held_s=%s still_open=%s rss_end_kb=%s' \
        "$(field "$idle" rss_after_kb)" "$(field "$idle" bytes_per_conn)" \
        "$(field "$idle" held_s)" "$(field "$idle" still_open)" "$(field "$idle" rss_end_kb)"
    printf ' probe_delivered_pct=%s probe_p50_us=%s probe_p99_us=%s probe_max_us=%s' \
        "$(field "$probe" delivered_pct)" "$(field "$probe" p50_us)" \
        "$(field "$probe" p99_us)" "$(field "$probe" max_us)"
    printf ' machine_mem_used_mb=%s\n' "$((mem_start - mem_low))"
    if [[ -z $idle ]]; then
        log "$name: no idle result; last lines of its stderr:"
        tail -3 "$idle_err" >&2 || true
    fi
}

main() {
    command -v taskset >/dev/null || { log "taskset (util-linux) is required"; exit 1; }
    TARGET_CONNECTIONS=$CONNECTIONS
    ulimit -Hn "$FILE_LIMIT" 2>/dev/null || true
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    if (($(ulimit -n) < FILE_LIMIT)); then
        CONNECTIONS=$(($(ulimit -n) - FD_RESERVE))
        CAPPED=$CONNECTIONS
        log "cannot raise the file limit to $FILE_LIMIT (hard limit $(ulimit -Hn); raising it needs CAP_SYS_RESOURCE): capped at $CONNECTIONS connections per process"
    fi
    if (($(available_mb) < MIN_AVAILABLE_MB * 2)); then
        log "only $(available_mb) MiB available; need at least $((MIN_AVAILABLE_MB * 2)) MiB"
        exit 1
    fi
    build_release
    log "$(nproc) CPUs, $(awk '/^MemTotal/ {print int($2/1048576)}' /proc/meminfo) GiB, load average $(cut -d' ' -f1-3 /proc/loadavg), fd limit $(ulimit -n)"
    local b
    for b in $BROKERS; do
        if [[ $b == mosquitto && ! -x $MOSQUITTO ]]; then
            log "skipping mosquitto: $MOSQUITTO not found"
            continue
        fi
        run_broker "$b"
    done
}

main "$@"
