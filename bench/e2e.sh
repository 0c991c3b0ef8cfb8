#!/usr/bin/env bash
# End-to-end latency of the whole product: from the last C-STORE of a
# single-image chest CR/DX study to its SR being stored in a real PACS
# (Orthanc), minus the configured quiet period; and the daemon's peak RSS.
# Prints a table. Usage: bench/e2e.sh [STUDIES] [PITCH_MM]
set -euo pipefail
cd "$(dirname "$0")/.."
studies=${1:-10}
pitch=${2:-0.2}
quiet=0.5
cargo build --release -q -p triaged
bin=${CARGO_TARGET_DIR:-target}/release/triaged
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 3; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pacs=$(free_port); http=$(free_port); dicom=$(free_port)
cat > "$work/orthanc.json" <<JSON
{"Name":"BenchPACS","StorageDirectory":"$work/pacs","IndexDirectory":"$work/pacs","Plugins":[],
 "HttpPort":$http,"RemoteAccessAllowed":false,"AuthenticationEnabled":false,
 "DicomAet":"BENCHPACS","DicomPort":$pacs,"DicomCheckCalledAet":true,"DicomAlwaysAllowStore":true,
 "StableAge":5,"SaveJobs":false}
JSON
TCP_NODELAY=1 Orthanc "$work/orthanc.json" > "$work/orthanc.log" 2>&1 & pids+=($!)
cat > "$work/triaged.toml" <<TOML
[dicom]
listen = "127.0.0.1:$dicom"
[storage]
dir = "$work/storage"
[pipeline]
quiet_secs = $quiet
[models]
dir = "$PWD/models"
[[destinations]]
name = "pacs"
ae_title = "BENCHPACS"
host = "127.0.0.1"
port = $pacs
TOML
"$bin" --config "$work/triaged.toml" serve > "$work/triaged.log" 2>&1 & daemon=$!; pids+=($daemon)
until curl -sf "http://127.0.0.1:$http/system" > /dev/null; do sleep 0.1; done
until echoscu -aec TRIAGED 127.0.0.1 "$dicom" 2>/dev/null; do sleep 0.1; done
"$bin" phantom --out "$work/cases" --count "$studies" --pitch "$pitch" > /dev/null 2>&1

printf '| study | modality | size | store ms | to SR in PACS ms (minus quiet %s s) |\n|---|---|---|---|---|\n' "$quiet"
total=0
for f in "$work"/cases/*.dcm; do
  uid=$(dcmdump +P 0020,000d "$f" | sed -E 's/.*\[(.*)\].*/\1/')
  mod=$(dcmdump +P 0008,0060 "$f" | sed -E 's/.*\[(.*)\].*/\1/')
  size=$(dcmdump +P 0028,0010 +P 0028,0011 "$f" | awk '{print $3}' | paste -sd x)
  t0=$(date +%s%N)
  TCP_NODELAY=1 storescu -aec TRIAGED 127.0.0.1 "$dicom" "$f"
  t1=$(date +%s%N)
  q="{\"Level\":\"Instance\",\"Query\":{\"StudyInstanceUID\":\"$uid\",\"Modality\":\"SR\"}}"
  until [ "$(curl -sf -X POST --data-binary "$q" "http://127.0.0.1:$http/tools/find")" != "[]" ]; do sleep 0.01; done
  t2=$(date +%s%N)
  ms=$(( (t2 - t1) / 1000000 - ${quiet%.*}*1000 - ${quiet#*.}*100 ))
  total=$((total + ms))
  printf '| %s | %s | %s | %d | %d |\n' "${uid:0:24}..." "$mod" "$size" $(( (t1 - t0) / 1000000 )) "$ms"
done
printf '\nmean %d ms over %d studies; daemon peak RSS %s\n' $((total / studies)) "$studies" "$(grep VmHWM /proc/$daemon/status | awk '{print $2, $3}')"
