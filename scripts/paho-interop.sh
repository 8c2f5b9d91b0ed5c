#!/usr/bin/env bash
# Runs the Eclipse Paho interoperability suite (eclipse/paho.mqtt.testing,
# interoperability/client_test.py for MQTT 3.1.1 and client_test5.py for MQTT 5.0)
# against the `mqtt-broker` binary of this workspace.
#
# Usage: scripts/paho-interop.sh PATH_TO_PAHO_MQTT_TESTING [TEST_NAME...]
#   TEST_NAME (optional) runs only those tests, e.g. test_flow_control2 (or
#   Test.test_flow_control2); each name is looked for in both files.
# Environment:
#   CARGO_TARGET_DIR   where cargo builds (default: target/ of the workspace)
#   PAHO_TIMEOUT       seconds allowed per test file (default 600)
#   PAHO_KEEP_LOGS=1   keep the brokers' debug logs and the suite output (path printed)
#
# The suite is not vendored: pass a checkout of it. Exit status is non-zero when any test
# fails or errors, or when a file could not be run to its end.
set -euo pipefail

if [[ $# -lt 1 || ! -f "$1/interoperability/client_test5.py" ]]; then
    echo "usage: $0 PATH_TO_PAHO_MQTT_TESTING [TEST_NAME...]" >&2
    echo "  (a checkout of https://github.com/eclipse/paho.mqtt.testing)" >&2
    exit 2
fi
suite_dir=$(cd "$1/interoperability" && pwd)
shift
only_tests=("$@")

repo_dir=$(cd "$(dirname "$0")/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$repo_dir/target}
timeout_secs=${PAHO_TIMEOUT:-600}

echo "== building mqtt-broker (release)"
(cd "$repo_dir" && cargo build --release -p mqtt-broker --locked)
broker_bin="$target_dir/release/mqtt-broker"

# The suite's client and packet code is plain Python 3 using only the standard library, so
# there is nothing to pip-install; fail early and clearly if the interpreter cannot import it.
if ! (cd "$suite_dir" && python3 -c 'import mqtt.clients.V311, mqtt.clients.V5'); then
    echo "python3 cannot import the suite's mqtt package from $suite_dir" >&2
    exit 2
fi

work_dir=$(mktemp -d "${TMPDIR:-/tmp}/paho-interop.XXXXXX")
broker_pids=()
cleanup() {
    for pid in "${broker_pids[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    if [[ "${PAHO_KEEP_LOGS:-0}" == 1 ]]; then
        echo "logs kept in $work_dir"
    else
        rm -rf "$work_dir"
    fi
}
trap cleanup EXIT

# What the suite assumes of the server:
# - test_server_keep_alive (5.0) connects with keep alive 120 and wants Server Keep Alive 60:
#   the 5.0 file runs against a broker with `max_keepalive = 60`. The 3.1.1 file cannot: its
#   clients connect with keep alive 0, which a 3.x client may only use when the server has no
#   maximum (a 3.x client cannot be told a shorter one, so it is refused, as in mosquitto).
# - test_flow_control2 (5.0) sends Receive Maximum + 1 unfinished QoS 2 messages and wants
#   DISCONNECT 0x93; any announced Receive Maximum works (default 32).
# - test_maximum_packet_size (5.0) checks the server's limit only when below 65535: the
#   default (1 MiB) is fine.
# - test_subscribe_failure (both files) wants SUBACK 0x80 for the filter `test/nosubscribe`
#   (the suite's own broker hard-codes that refusal): both brokers get an ACL denying it. The
#   suite's clean up subscribes to `#`, which that ACL grants (a deny rule refuses only the
#   filters it covers wholly; deliveries are filtered by read access, as in mosquitto).
start_broker() { # NAME EXTRA_TOML; sets $broker_port
    local name=$1 extra=$2 pid
    broker_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    printf '%s\n[[listener]]\nbind_address = "127.0.0.1"\nport = %s\nallow_anonymous = true\n' \
        "$extra" "$broker_port" >"$work_dir/$name.toml"
    echo "== starting mqtt-broker ($name) on 127.0.0.1:$broker_port"
    # Each broker in a directory of its own: whatever it writes relative to its working
    # directory (a default store path) stays apart and is removed with the rest.
    mkdir "$work_dir/$name"
    (cd "$work_dir/$name" && exec "$broker_bin" -c "$work_dir/$name.toml" -v 2>"$work_dir/$name.log") &
    pid=$!
    broker_pids+=("$pid")
    for _ in $(seq 50); do
        if python3 -c "import socket; socket.create_connection(('127.0.0.1', $broker_port), 1).close()" 2>/dev/null; then
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "mqtt-broker ($name) exited at start:" >&2
            cat "$work_dir/$name.log" >&2
            exit 1
        fi
        sleep 0.1
    done
    echo "mqtt-broker ($name) does not accept connections" >&2
    exit 1
}

# `#` grants no `$` topic: test_dollar_topics publishes to `$` + one of its topics, which a
# 5.0 client would see refused with a PUBACK reason the suite's client cannot decode.
printf '%s\n' '# anonymous clients (the suite sends no user name)' \
    'topic deny test/nosubscribe' 'topic readwrite #' \
    'topic readwrite $TopicA/#' 'topic readwrite $client_test5/#' >"$work_dir/acl"
acl="acl_file = \"$work_dir/acl\""
start_broker mqtt311 "$acl"
port_client_test=$broker_port
start_broker mqtt5 "$acl"$'\n[limits]\nmax_keepalive = 60'
port_client_test5=$broker_port

# client_test.py leaves `--port` in sys.argv, which unittest.main() then rejects; run each file
# through a wrapper that gives the suite its options and unittest only its own arguments.
cat >"$work_dir/run_suite.py" <<'PY'
import os, runpy, sys, unittest

script, port, *tests = sys.argv[1:]
unittest_argv = [script, "-v", *tests]
original_main = unittest.main

def main(*args, **kwargs):
    kwargs["argv"] = unittest_argv
    return original_main(*args, **kwargs)

unittest.main = main
sys.argv = [script, "--hostname", "127.0.0.1", "--port", port]
os.chdir(os.path.dirname(os.path.abspath(script)))
sys.path.insert(0, os.getcwd())
runpy.run_path(script, run_name="__main__")
PY

run_tests() { # FILE PORT TEST...; sets $ran, $bad and $unfinished
    local file=$1 port=$2
    shift 2
    local out="$work_dir/${file%.py}.out" status=0 n failures errors
    timeout --kill-after=10 "$timeout_secs" \
        python3 "$work_dir/run_suite.py" "$suite_dir/$file" "$port" "$@" >"$out" 2>&1 || status=$?
    cat "$out"
    n=$(sed -n 's/^Ran \([0-9]*\) tests\{0,1\}.*/\1/p' "$out" | tail -1)
    if [[ -z "$n" ]]; then
        echo "$file: did not finish (exit status $status)" >&2
        unfinished=1
        return
    fi
    failures=$(sed -n 's/^FAILED (.*failures=\([0-9]*\).*/\1/p' "$out" | tail -1)
    errors=$(sed -n 's/^FAILED (.*errors=\([0-9]*\).*/\1/p' "$out" | tail -1)
    ran=$n
    bad=$((${failures:-0} + ${errors:-0}))
    if [[ $status -ne 0 && ${failures:-0} -eq 0 && ${errors:-0} -eq 0 ]]; then
        unfinished=1
    fi
}

failed_any=0
summary=()
for file in client_test.py client_test5.py; do
    tests=()
    # In unittest's own order (sorted by name): the tests share client state and were written
    # for that order.
    for method in $(sed -n 's/^ *def \(test[A-Za-z0-9_]*\)(self.*/\1/p' "$suite_dir/$file" | LC_ALL=C sort); do
        if [[ ${#only_tests[@]} -gt 0 ]] && ! printf '%s\n' "${only_tests[@]##*.}" | grep -qx "$method"; then
            continue
        fi
        tests+=("Test.$method")
    done
    if [[ ${#tests[@]} -eq 0 ]]; then
        continue
    fi
    ran=0
    bad=0
    unfinished=0
    port_var="port_${file%.py}"
    echo "== $file: ${#tests[@]} tests"
    run_tests "$file" "${!port_var}" "${tests[@]}"
    line="$file: $((ran - bad)) passed, $bad failed"
    if [[ $unfinished -ne 0 ]]; then
        line+=" (a run did not finish)"
        failed_any=1
    fi
    summary+=("$line")
    if [[ $bad -ne 0 ]]; then
        failed_any=1
    fi
done

for pid in "${broker_pids[@]}"; do
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "an mqtt-broker died during the run (keep its log with PAHO_KEEP_LOGS=1)" >&2
        failed_any=1
    fi
done

echo "== summary"
printf '%s\n' "${summary[@]}"
exit $failed_any
