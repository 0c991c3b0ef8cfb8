# Shared by the end-to-end benchmarks: a real PACS (Orthanc) and a release
# daemon on free ports in a temporary folder, both stopped on exit.
# Source it after setting `quiet` (seconds) and `models` (a models folder);
# `extra_toml`, if set, is appended to the daemon's configuration;
# `TRIAGED_BIN`, if set, is the daemon binary measured (to compare two
# builds in one hour) instead of a fresh release build of this checkout.
# Sets: bin, work, dicom (daemon port), http (Orthanc REST port), daemon (pid).
source bench/common.sh
bin=${TRIAGED_BIN:-$(release_triaged)}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 3; rm -rf "$work"; }
trap cleanup EXIT
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
max_images_per_series = ${MAX_IMAGES:-64}
[http]
listen = "127.0.0.1:0"
[models]
dir = "$models"
backend = "${BACKEND:-fast}"
[[destinations]]
name = "pacs"
ae_title = "BENCHPACS"
host = "127.0.0.1"
port = $pacs
${extra_toml:-}
TOML
"${daemon_env[@]}" "$bin" --config "$work/triaged.toml" serve > "$work/triaged.log" 2>&1 & daemon=$!; pids+=($daemon)
until curl -sf "http://127.0.0.1:$http/system" > /dev/null; do sleep 0.1; done
until echoscu -aec TRIAGED 127.0.0.1 "$dicom" 2>/dev/null; do sleep 0.1; done

# wait_for_sr STUDY_UID: until Orthanc holds an SR of the study.
wait_for_sr() {
  local q="{\"Level\":\"Instance\",\"Query\":{\"StudyInstanceUID\":\"$1\",\"Modality\":\"SR\"}}"
  until [ "$(curl -sf -X POST --data-binary "$q" "http://127.0.0.1:$http/tools/find")" != "[]" ]; do sleep 0.01; done
}
# The quiet period in ms (any number of decimals).
quiet_ms=$(awk -v q="$quiet" 'BEGIN {printf "%d", q * 1000 + 0.5}')
# ms_since T0_NS: milliseconds from T0 (date +%s%N) to now, minus the quiet period.
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 - quiet_ms )); }
# ms_since_indexed STUDY_UID: milliseconds from the daemon indexing the
# study's last instance (its clock is this machine's) to now, minus the
# quiet period.
ms_since_indexed() {
  local indexed
  indexed=$(sqlite3 "$work/storage/triaged.db" "SELECT CAST((julianday(last_received_at) - 2440587.5) * 86400000 AS INTEGER) FROM studies WHERE study_instance_uid = '$1'")
  echo $(( $(date +%s%N) / 1000000 - indexed - quiet_ms ))
}
