#!/usr/bin/env bash
# Run the daemon on its embedded defaults on a fresh Debian 12 machine that
# has only the Rust toolchain: install what the build needs from Debian
# (scripts/packages.sh lists every package), then build and run
# `triaged serve`. Extra arguments go to `serve` (e.g. --config FILE).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/packages.sh
install_missing "${BUILD_PACKAGES[@]}"
exec cargo run --release --locked -p triaged -- serve "$@"
