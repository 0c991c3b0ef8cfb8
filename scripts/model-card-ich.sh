#!/usr/bin/env bash
# Reproduce the figures of docs/model-card-ich.md in one command: draw the
# held-out phantom head CT test set, run `triaged evaluate` on it three
# ways (per study as the daemon reads it: the thinnest axial series, at
# most 64 slices of it; per study reading every slice; per slice), and
# splice the tables into the card between its `model-card-ich.sh` markers.
# Nothing is edited by hand.
#
#   scripts/model-card-ich.sh                  the card's run (120 studies, 512 x 512)
#   scripts/model-card-ich.sh --count N --matrix M --bootstrap B --out DIR --card FILE
#
# TRIAGED_BIN names a built binary (default: a release build made here).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
count=120 matrix=512 bootstrap=1000 out=docs/model-card-ich card=docs/model-card-ich.md
while [ $# -gt 0 ]; do
  case "$1" in
    --count) count=$2; shift 2 ;;
    --matrix) matrix=$2; shift 2 ;;
    --bootstrap) bootstrap=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --card) card=$2; shift 2 ;;
    *) echo "model-card-ich.sh: unknown argument $1" >&2; exit 2 ;;
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
set_name="phantom-head-ct-test-$count"
"$bin" phantom --anatomy head-ct --out "$work/$set_name" --count "$count" --matrix "$matrix" --set test
model="$repo/models/demo-ich"
groups=manufacturer,read_thickness,pineal_calcification,choroid_calcification,falx_calcification,streaks
(cd "$work" && "$bin" evaluate --model "$model" --data "$set_name" --out "$out/study" \
   --bootstrap "$bootstrap" --subgroups "$groups" > /dev/null)
(cd "$work" && "$bin" evaluate --model "$model" --data "$set_name" --out "$out/study-every-slice" \
   --bootstrap "$bootstrap" --subgroups "$groups" --max-images-per-series 0 > /dev/null)
(cd "$work" && "$bin" evaluate --model "$model" --data "$set_name" --labels "$set_name/slices.csv" \
   --out "$out/slice" --bootstrap "$bootstrap" --subgroups manufacturer,slice_thickness > /dev/null)
python3 - "$card" "$out" <<'PY'
import json, sys
card, out = sys.argv[1], sys.argv[2]
def section(name, title):
    tables = open(f"{out}/{name}/tables.md").read().strip("\n")
    return f"#### {title}\n\n{tables}\n"
def subgroups(name):
    r = json.load(open(f"{out}/{name}/evaluation.json"))["report"]
    rows = ["| label | subgroup | n | pos | AUROC | sens | spec (1 - false-positive rate) |", "|---|---|---|---|---|---|---|"]
    f = lambda v: "-" if v is None else f"{v:.3f}"
    for l in r["labels"]:
        for g in l["subgroups"]:
            m = g
            rows.append(f"| {l['label']} | {g['column']}={g['value']} | {m['n']} | {m['positives']} | {f(m['auroc'])} | {f(m['sensitivity'])} | {f(m['specificity'])} |")
    return "\n".join(rows) + "\n"
body = (section("study", "Per study, as the daemon reads it (thinnest axial series, at most 64 slices)")
        + "\nBy subgroup (vendor, slice thickness read, and the mimics: specificity among the heads that have one):\n\n"
        + subgroups("study")
        + "\n" + section("study-every-slice", "Per study, every slice of the series read")
        + "\n" + section("slice", "Per slice (every slice of both series)"))
begin, end = "<!-- model-card-ich.sh: begin -->", "<!-- model-card-ich.sh: end -->"
text = open(card).read()
if begin not in text or end not in text:
    sys.exit(f"{card}: the markers {begin} and {end} are missing")
head, rest = text.split(begin, 1)
_, tail = rest.split(end, 1)
open(card, "w").write(head + begin + "\n" + body + end + tail)
PY
echo "model-card-ich.sh: $count studies; wrote $out and the tables of $card" >&2
