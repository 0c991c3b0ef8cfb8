#!/usr/bin/env bash
# End-to-end latency of the whole product: from the last C-STORE of a
# single-image chest CR/DX study (the moment the daemon indexed it, so that
# storescu's own release and exit do not count) to its SR being stored in
# a real PACS (Orthanc), minus the configured quiet period; and the
# daemon's peak RSS.
# Prints a table. Usage: bench/e2e.sh [STUDIES] [PITCH_MM]
# BACKEND=candle runs the models on candle's ops instead of the fast path.
set -euo pipefail
cd "$(dirname "$0")/.."
studies=${1:-10}
pitch=${2:-0.2}
quiet=0.5
models=$PWD/models
source bench/lib.sh
"$bin" phantom --out "$work/cases" --count "$studies" --pitch "$pitch" > /dev/null 2>&1

printf '| study | modality | size | store ms | to SR in PACS ms (from indexed, minus quiet %s s) | assembly ms | analysis ms | delivery ms |\n|---|---|---|---|---|---|---|---|\n' "$quiet"
total=0
# Where the time went, from the index (times the database recorded, in ms):
# assembly = job made - last instance indexed - quiet period; analysis =
# first report queued - job made (claim, decode, models, SR and captures);
# delivery = last object (SR, captures) delivered - first queued.
split() {
  sqlite3 "$work/storage/triaged.db" "
    SELECT printf('%d | %d | %d',
      (julianday(j.created_at) - julianday(s.last_received_at)) * 86400000 - $quiet_ms,
      (julianday(min(o.created_at)) - julianday(j.created_at)) * 86400000,
      (julianday(max(o.delivered_at)) - julianday(min(o.created_at))) * 86400000)
    FROM studies s JOIN jobs j USING (study_instance_uid) JOIN outbox o USING (study_instance_uid)
    WHERE s.study_instance_uid = '$1'"
}
for f in "$work"/cases/*.dcm; do
  uid=$(dcmdump +P 0020,000d "$f" | sed -E 's/.*\[(.*)\].*/\1/')
  mod=$(dcmdump +P 0008,0060 "$f" | sed -E 's/.*\[(.*)\].*/\1/')
  size=$(dcmdump +P 0028,0010 +P 0028,0011 "$f" | awk '{print $3}' | paste -sd x)
  t0=$(date +%s%N)
  TCP_NODELAY=1 storescu -aec TRIAGED 127.0.0.1 "$dicom" "$f"
  t1=$(date +%s%N)
  wait_for_sr "$uid"
  ms=$(ms_since_indexed "$uid")
  total=$((total + ms))
  # The other objects (heatmap captures) may still be on their way.
  for _ in $(seq 1200); do
    [ "$(sqlite3 "$work/storage/triaged.db" "SELECT count(*) FROM outbox WHERE study_instance_uid = '$uid' AND delivered_at IS NULL")" = 0 ] && break
    sleep 0.05
  done
  printf '| %s | %s | %s | %d | %d | %s |\n' "${uid:0:24}..." "$mod" "$size" $(( (t1 - t0) / 1000000 )) "$ms" "$(split "$uid")"
done
printf '\nmean %d ms over %d studies; daemon peak RSS %s\n' $((total / studies)) "$studies" "$(peak_rss)"
