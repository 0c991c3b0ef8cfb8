#!/usr/bin/env bash
# Reproduce the figures of docs/model-card.md in one command: draw the
# held-out phantom test set (with its findings' masks), run
# `triaged evaluate` on it (evaluation.json, tables.md, roc.png,
# reliability.png), and splice tables.md into the card between its
# `model-card.sh` markers. Nothing is edited by hand.
#
#   scripts/model-card.sh                       the card's run (2000 cases)
#   scripts/model-card.sh --count N --bootstrap B --out DIR --card FILE
#
# TRIAGED_BIN names a built binary (default: a release build made here).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
count=2000 bootstrap=1000 out=docs/model-card card=docs/model-card.md
while [ $# -gt 0 ]; do
  case "$1" in
    --count) count=$2; shift 2 ;;
    --bootstrap) bootstrap=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --card) card=$2; shift 2 ;;
    *) echo "model-card.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
bin=${TRIAGED_BIN:-}
if [ -z "$bin" ]; then
  cargo build --release --locked -p triaged
  bin=${CARGO_TARGET_DIR:-$repo/target}/release/triaged
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# A relative data folder, so evaluation.json names the set, not this
# machine's temporary path.
set_name="phantom-test-$count"
"$bin" phantom --out "$work/$set_name" --count "$count" --pitch 1.0 --set test --masks
(cd "$work" && "$bin" evaluate --model "$repo/models/demo-cxr" --data "$set_name" \
   --out "$out" --bootstrap "$bootstrap" >/dev/null)
python3 - "$card" "$out/tables.md" <<'PY'
import sys
card, tables = sys.argv[1], open(sys.argv[2]).read()
begin, end = "<!-- model-card.sh: begin -->", "<!-- model-card.sh: end -->"
text = open(card).read()
if begin not in text or end not in text:
    sys.exit(f"{card}: the markers {begin} and {end} are missing")
head, rest = text.split(begin, 1)
_, tail = rest.split(end, 1)
open(card, "w").write(head + begin + "\n" + tables.strip("\n") + "\n" + end + tail)
PY
echo "model-card.sh: $count cases; wrote $out and the tables of $card" >&2
