#!/usr/bin/env bash
# The whole test suite: installs what it needs (scripts/setup.sh), then runs
# every unit and integration test. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo test --workspace --locked "$@"
