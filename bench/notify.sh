#!/usr/bin/env bash
# Latency of results outside DICOM: from the last C-STORE of a single-image
# chest study to (a) its SR stored in Orthanc, (b) its ORU^R01 acknowledged
# by an HL7 receiver, (c) its FHIR Bundle accepted, (d) its webhook received,
# each minus the quiet period. The peers are the suite's (tests/peers, on
# PyPI's hl7 and fhir.resources), which stamp what they receive. Every study
# goes to every destination (min_priority = "routine"). Prints a table.
# Usage: bench/notify.sh [STUDIES]
set -euo pipefail
cd "$(dirname "$0")/.."
studies=${1:-10}
quiet=0.5
models=$PWD/models
py=$PWD/.venv/bin/python
peers=$PWD/tests/peers
work_peers=$(mktemp -d)
source bench/common.sh
hl7=$(free_port); fhir=$(free_port); hook=$(free_port)
echo -n "bench-secret" > "$work_peers/secret"
extra_toml="
[[destinations]]
name = \"ris\"
kind = \"hl7\"
host = \"127.0.0.1\"
port = $hl7
[[destinations]]
name = \"fhir\"
kind = \"fhir\"
url = \"http://127.0.0.1:$fhir/fhir\"
[[destinations]]
name = \"alert\"
kind = \"webhook\"
url = \"http://127.0.0.1:$hook/alerts\"
secret_file = \"$work_peers/secret\"
min_priority = \"routine\"
"
"$py" "$peers/hl7_receiver.py" "$hl7" "$work_peers/hl7.log" aa > /dev/null & peer_pids=($!)
"$py" "$peers/fhir_server.py" "$fhir" "$work_peers/fhir.log" ok > /dev/null & peer_pids+=($!)
"$py" "$peers/webhook_receiver.py" "$hook" "$work_peers/hook.log" ok bench-secret > /dev/null & peer_pids+=($!)
source bench/lib.sh
pids+=("${peer_pids[@]}")
trap 'cleanup; rm -rf "$work_peers"' EXIT
for port in "$hl7" "$fhir" "$hook"; do
  until python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$port),1)" 2>/dev/null; do sleep 0.1; done
done
"$bin" phantom --out "$work/cases" --count "$studies" --pitch 0.2 > /dev/null 2>&1

# arrival KIND STUDY_UID: the time (s since 1970) the peer first recorded
# the study's message, or nothing yet.
arrival() {
  "$py" - "$1" "$2" "$work_peers" <<'PY'
import json, sys
kind, uid, d = sys.argv[1], sys.argv[2], sys.argv[3]
log = {"hl7": "hl7.log", "fhir": "fhir.log", "hook": "hook.log"}[kind]
try:
    lines = [json.loads(l) for l in open(f"{d}/{log}")]
except FileNotFoundError:
    lines = []
for e in lines:
    text = json.dumps(e)
    if uid in text and (e.get("answered") == "AA" or e.get("status") in (200, 204)):
        print(e["at"]); break
PY
}
wait_arrival() { local t; until t=$(arrival "$1" "$2") && [ -n "$t" ]; do sleep 0.02; done; echo "$t"; }
ms_from() { python3 -c "print(round(($1 - $2) * 1000 - $quiet * 1000))"; }

printf '| study | SR in PACS ms | ORU^R01 ACKed ms | FHIR Bundle ms | webhook ms |\n|---|---|---|---|---|\n'
for f in "$work"/cases/*.dcm; do
  uid=$(dcmdump +P 0020,000d "$f" | sed -E 's/.*\[(.*)\].*/\1/')
  TCP_NODELAY=1 storescu -aec TRIAGED 127.0.0.1 "$dicom" "$f"
  t1=$(python3 -c 'import time; print(time.time())')
  wait_for_sr "$uid"; sr=$(python3 -c 'import time; print(time.time())')
  h=$(wait_arrival hl7 "$uid"); fh=$(wait_arrival fhir "$uid"); w=$(wait_arrival hook "$uid")
  printf '| %s | %d | %d | %d | %d |\n' "${uid:0:24}..." "$(ms_from "$sr" "$t1")" "$(ms_from "$h" "$t1")" "$(ms_from "$fh" "$t1")" "$(ms_from "$w" "$t1")"
done
