#!/usr/bin/env bash
# End-to-end latency of head CT triage: from the last C-STORE of a phantom
# head CT study (512 x 512 slices) to its SR stored in a real PACS
# (Orthanc), minus the configured quiet period; and the daemon's peak RSS.
# Two studies: the routine 5 mm series alone (28 slices over 140 mm), and
# the routine plus a 0.625 mm thin series (224 slices), which demo-ich
# reads (the thinnest axial series). Prints a table.
# MAX_IMAGES=0 reads every slice of the thin series (default: 64, evenly
# spaced, `pipeline.max_images_per_series`).
set -euo pipefail
cd "$(dirname "$0")/.."
quiet=0.5
models=$PWD/models
source bench/lib.sh
"$bin" phantom --anatomy head-ct --set test --count 40 --out "$work/head" > /dev/null 2>&1
# The first study without a thin series, and the first with a 0.625 mm one.
routine=$(awk -F, 'NR > 1 && $(NF-1) == "" {print $1; exit}' "$work/head/labels.csv")
thin=$(awk -F, 'NR > 1 && $(NF-2) == "0.625" {print $1; exit}' "$work/head/labels.csv")
printf '| study | slices sent | series read | max images | store ms | to SR in PACS ms (minus quiet %s s) |\n|---|---|---|---|---|---|\n' "$quiet"
for folder in "$routine" "$thin"; do
  dir="$work/head/$folder"
  f=$(ls "$dir"/s2-*.dcm | head -1)
  uid=$(dcmdump +P 0020,000d "$f" | sed -E 's/.*\[(.*)\].*/\1/')
  n=$(ls "$dir"/*.dcm | wc -l)
  read_series=$( [ -n "$(ls "$dir"/s3-*.dcm 2>/dev/null | head -1)" ] && echo "thin ($(ls "$dir"/s3-*.dcm | wc -l) slices)" || echo "5 mm (28 slices)")
  t0=$(date +%s%N)
  TCP_NODELAY=1 storescu -aec TRIAGED 127.0.0.1 "$dicom" "$dir"/*.dcm
  t1=$(date +%s%N)
  wait_for_sr "$uid"
  ms=$(ms_since "$t1")
  printf '| %s | %d | %s | %s | %d | %d |\n' "${uid:0:24}..." "$n" "$read_series" "${MAX_IMAGES:-64}" $(( (t1 - t0) / 1000000 )) "$ms"
done
printf '\ndaemon peak RSS %s\n' "$(peak_rss)"
