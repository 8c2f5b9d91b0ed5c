#!/usr/bin/env bash
# Builds the Debian package of mqtt-broker with cargo-deb: the release binary, the manual pages
# it generates from its own definitions, then the .deb (target/debian/mqtt-broker_*.deb).
# Usage: scripts/build-deb.sh   (needs cargo-deb: cargo install cargo-deb --locked)
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --locked -p mqtt-broker
"$target/release/mqtt-broker" man "$target/release/man"
cargo deb -p mqtt-broker --no-build --locked --strip
ls "$target"/debian/mqtt-broker_*.deb
