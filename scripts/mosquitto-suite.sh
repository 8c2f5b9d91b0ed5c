#!/usr/bin/env bash
# Runs mosquitto's own broker tests (test/broker of an eclipse/mosquitto checkout, tag v2.0.11)
# against the `mqtt-broker` binary of this workspace, or against another broker for comparison,
# and prints one line per test and the counts.
#
# Usage: scripts/mosquitto-suite.sh PATH_TO_MOSQUITTO_CHECKOUT [TEST_NAME...]
#   TEST_NAME (optional) runs only those tests, e.g. 07-will-takeover (with or without .py).
# Environment:
#   BROKER             ours (default) or mosquitto (the `mosquitto` on PATH, or /usr/sbin/mosquitto)
#   CARGO_TARGET_DIR   where cargo builds (default: target/ of the workspace)
#   SUITE_TIMEOUT      seconds allowed per test (default 60)
#   SUITE_KEEP_LOGS=1  keep each test's output (the directory is printed)
#
# The suite is not vendored: pass a checkout of it. Its tests start the broker as
# ../../src/mosquitto with mosquitto's own options (-v, -p PORT, -c FILE); this script copies
# test/ to a temporary directory and puts there a src/mosquitto that runs the chosen broker with
# the same arguments. Tests that need mosquitto's C plugins (09-plugin-*), its dynamic security
# plugin (14-dynsec-*) or its compiled test clients are skipped and counted apart.
# Exit status is non-zero when any test that ran failed.
set -euo pipefail

if [[ $# -lt 1 || ! -f "$1/test/broker/test.py" ]]; then
    echo "usage: $0 PATH_TO_MOSQUITTO_CHECKOUT [TEST_NAME...]" >&2
    echo "  (a checkout of https://github.com/eclipse/mosquitto at tag v2.0.11)" >&2
    exit 2
fi
checkout=$(cd "$1" && pwd)
shift
only=("$@")

repo_dir=$(cd "$(dirname "$0")/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$repo_dir/target}
timeout_secs=${SUITE_TIMEOUT:-60}
broker=${BROKER:-ours}

case $broker in
ours)
    (cd "$repo_dir" && cargo build --release -p mqtt-broker --locked -q)
    broker_bin="$target_dir/release/mqtt-broker"
    ;;
mosquitto)
    broker_bin=$(command -v mosquitto || echo /usr/sbin/mosquitto)
    ;;
*)
    echo "BROKER must be ours or mosquitto" >&2
    exit 2
    ;;
esac
[[ -x $broker_bin ]] || { echo "broker not found: $broker_bin" >&2; exit 2; }

work=$(mktemp -d /tmp/mosquitto-suite.XXXXXX)
cleanup() { [[ ${SUITE_KEEP_LOGS:-0} == 1 ]] || rm -rf "$work"; }
trap cleanup EXIT
cp -r "$checkout/test" "$work/test"
mkdir -p "$work/src" "$work/logs"
printf '#!/bin/sh\nexec %q "$@"\n' "$broker_bin" >"$work/src/mosquitto"
chmod +x "$work/src/mosquitto"

# The suite's own list of tests, in its order, each as "PORTS NAME" (how many ports it takes
# on its command line).
mapfile -t tests < <(sed -n "s|^ *(\([0-9]*\), *'\./\([^']*\.py\)').*|\1 \2|p" "$checkout/test/broker/test.py")

needs_c_parts() { # test file
    case $1 in
    09-plugin-* | 14-dynsec-*) return 0 ;;
    esac
    # Tests that run a client or load a plugin compiled from test/broker/c.
    grep -q "'\./c/\|plugin c/" "$checkout/test/broker/$1"
}

wanted() { # test file
    [[ ${#only[@]} -eq 0 ]] && return 0
    local name
    for name in "${only[@]}"; do
        [[ $1 == "$name" || $1 == "$name.py" ]] && return 0
    done
    return 1
}

passed=0 failed=0 skipped=0
failures=()
port=$((21000 + RANDOM % 20000))
for entry in "${tests[@]}"; do
    count=${entry%% *} test=${entry#* }
    wanted "$test" || continue
    if needs_c_parts "$test"; then
        printf 'skip  %s (needs mosquitto C parts)\n' "$test"
        skipped=$((skipped + 1))
        continue
    fi
    ports=()
    for ((i = 0; i < count; i++)); do
        port=$((port + 1))
        ports+=("$port")
    done
    if (cd "$work/test/broker" && timeout "$timeout_secs" python3 "./$test" "${ports[@]}" \
        >"$work/logs/${test%.py}.log" 2>&1); then
        printf 'pass  %s\n' "$test"
        passed=$((passed + 1))
    else
        printf 'FAIL  %s\n' "$test"
        failed=$((failed + 1))
        failures+=("$test")
    fi
done

echo "== $broker: $passed passed, $failed failed, $skipped skipped (C plugins, dynsec, C clients)"
[[ ${SUITE_KEEP_LOGS:-0} == 1 ]] && echo "logs kept in $work/logs"
[[ $failed -eq 0 ]]
