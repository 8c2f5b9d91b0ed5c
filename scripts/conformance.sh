#!/usr/bin/env bash
# conformance.sh: regenerates docs/CONFORMANCE.md from the tests (examples/tests/conformance.rs
# reads every normative statement of MQTT 3.1.1 and 5.0 from ../shared/spec/, or SPEC_DIR, and
# every citation of one in the workspace's tests) and prints how many statements are cited.
# `cargo test` fails while the file is stale.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
UPDATE_CONFORMANCE=1 cargo test -p mqtt-broker --test conformance --locked -- --nocapture 2>&1 \
  | grep -E '^(Cited by|cited ids)' || true
git --no-pager diff --stat -- docs/CONFORMANCE.md
