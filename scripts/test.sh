#!/usr/bin/env bash
# The whole test suite: installs what it needs (scripts/setup.sh), checks
# formatting (rustfmt) and lints (clippy, warnings are errors), then runs
# every unit and integration test: once on SQLite (the embedded default),
# once more on PostgreSQL (a cluster's database; a throwaway server of the
# suite's own, scripts/postgres.sh). Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  rustup component add rustfmt clippy
fi
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -q -- -D warnings
cargo test --workspace --locked "$@"
pg=$(mktemp -d)
trap 'scripts/postgres.sh stop "$pg"; rm -rf "$pg"' EXIT
eval "$(scripts/postgres.sh start "$pg")"
echo "test.sh: the suite again, on PostgreSQL ($TRIAGED_TEST_POSTGRES)"
cargo test --workspace --locked "$@"
