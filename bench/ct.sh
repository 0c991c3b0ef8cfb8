#!/usr/bin/env bash
# CT through the whole product: series of SLICES slices (the head CT
# fixture, 512x512, with fresh UIDs: a new study per series) stored at full
# speed by one storescu association, analysed by a CT model (per-series
# maximum over max_images_per_series slices) and the SR stored in a real
# PACS (Orthanc). Prints, per study: store time, time from the last
# C-STORE to the SR in the PACS minus the quiet period, and the daemon's
# peak RSS so far (it grows only if memory grows with the series).
# The model is fixtures/infer/tiny-ct (a tiny DenseNet with random
# weights): the figures are the pipeline's own cost, not a real model's.
# Usage: bench/ct.sh [SLICES...]   (default: 50 200 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("${@:-50 200 1000}")
read -ra sizes <<< "${sizes[*]}"
quiet=0.5
scripts/setup.sh > /dev/null
models=$(mktemp -d)
mkdir -p "$models/tiny-ct"
cp fixtures/infer/tiny-ct/* "$models/tiny-ct/"
source bench/lib.sh
ct=fixtures/generated/ct-693.dcm
srs() {
  curl -sf -X POST --data-binary '{"Level":"Instance","Query":{"Modality":"SR"}}' \
    "http://127.0.0.1:$http/tools/find" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'
}
printf '| slices | store s | inst/s | to SR in PACS ms (minus quiet %s s) | daemon peak RSS |\n|---:|---:|---:|---:|---:|\n' "$quiet"
for n in "${sizes[@]}"; do
  before=$(srs)
  t0=$(date +%s%N)
  TCP_NODELAY=1 storescu -aec TRIAGED --repeat "$n" +IR "$n" +IS "$n" 127.0.0.1 "$dicom" "$ct"
  t1=$(date +%s%N)
  until [ "$(srs)" -gt "$before" ]; do sleep 0.01; done
  ms=$(ms_since "$t1")
  s=$(python3 -c "print(f'{($t1-$t0)/1e9:.2f}')")
  rate=$(python3 -c "print(round($n/(($t1-$t0)/1e9)))")
  printf '| %d | %s | %s | %d | %s |\n' "$n" "$s" "$rate" "$ms" "$(peak_rss)"
done
rm -rf "$models"
