#!/usr/bin/env bash
# Bring deploy/cluster/compose.yaml up and check that it triages with a
# node dead: phantom chest studies sent to Orthanc, which routes them
# through HAProxy to the three nodes, each come back as exactly one SR.
#   1. up --build; wait until Orthanc, HAProxy and every node are ready;
#   2. send 3 studies; once the cluster has indexed them, kill -9 the node
#      that received the latest instance, most likely in the quiet period,
#      so what it was to assemble, analyse or deliver falls to the others
#      (after its lease);
#   3. once HAProxy has taken it out, send 6 studies (3 resent, 3 new) to
#      the two left;
#   4. wait for one SR per study in Orthanc, then a lease and a quiet
#      period more, and check no study has a second.
# Prints what it waits for and a table per node; exit status 0 when every
# check held. `down -v` at the end unless KEEP=1. Takes a few minutes
# (the first run builds the images: deploy/offline-base-images.sh where
# Docker Hub is out of reach).
#   bash deploy/cluster/check.sh
set -euo pipefail
cd "$(dirname "$0")"
if docker compose version >/dev/null 2>&1; then compose=(docker compose); else compose=(docker-compose); fi
compose+=(-p triaged-cluster-check -f compose.yaml)
orthanc=http://127.0.0.1:8042
lb=http://127.0.0.1:8642
lease_secs=$(awk -F' *= *' '$1 == "lease_secs" {print $2}' triaged.toml)
quiet_secs=$(awk -F' *= *' '$1 == "quiet_secs" {print $2}' triaged.toml)

cleanup() {
  local rc=$?
  if [ $rc -ne 0 ]; then
    "${compose[@]}" ps >&2 || true
    "${compose[@]}" logs --no-color --tail=15 >&2 || true
  fi
  [ "${KEEP:-}" = 1 ] || "${compose[@]}" down -v >/dev/null 2>&1 || true
  exit $rc
}
trap cleanup EXIT

# wait_for WHAT SECONDS COMMAND...: run COMMAND every 0.2 s until it
# succeeds; fail naming WHAT after SECONDS.
wait_for() {
  local what=$1 secs=$2 deadline=$((SECONDS + $2))
  shift 2
  echo "waiting: $what" >&2
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      echo "FAILED: $what (not within $secs s)" >&2
      exit 1
    fi
    sleep 0.2
  done
}

node() { "${compose[@]}" exec -T "$@"; }
sql() { node postgres psql -U triaged -d triaged -tAc "$1"; }
# The number of studies a node's worklist holds (the admin token is in the
# shared storage).
worklist_total() {
  local token
  token=$(node "$1" cat /var/lib/triaged/admin.token)
  node "$1" curl -fsS -H "Authorization: Bearer $token" http://127.0.0.1:8642/api/worklist |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["total"])'
}
all_nodes_list() {
  local want=$1
  shift
  for n in "$@"; do [ "$(worklist_total "$n")" = "$want" ] || return 1; done
}
# Per study in Orthanc: how many SR instances it holds ("study n" lines).
srs_per_study() {
  curl -fsS -X POST "$orthanc/tools/find" \
    -d '{"Level":"Series","Query":{"Modality":"SR"},"Expand":true}' |
    python3 -c '
import collections, json, sys
n = collections.Counter()
for s in json.load(sys.stdin):
    n[s["ParentStudy"]] += len(s["Instances"])
for study, k in sorted(n.items()):
    print(study, k)'
}
indexed() { [ "$(sql 'SELECT count(*) FROM studies')" = "$1" ]; }
studies_with_sr() { [ "$(srs_per_study | wc -l)" -ge "$1" ]; }
demo() {
  "${compose[@]}" run --rm -T demo demo --no-start --to orthanc:4242 --ae-title ORTHANC \
    --head-ct false --studies "$1" >/dev/null
}

# UP_ARGS= (empty) starts the images already built.
"${compose[@]}" up -d ${UP_ARGS---build}
wait_for "Orthanc answers" 300 curl -fsS "$orthanc/system"
for n in triaged-1 triaged-2 triaged-3; do
  wait_for "$n ready (database, storage, models)" 300 node "$n" curl -fsS http://127.0.0.1:8642/readyz
done
wait_for "HAProxy forwards HTTP" 120 curl -fsS "$lb/readyz"

echo "sending 3 studies" >&2
demo 3
wait_for "the cluster has indexed 3 studies" 120 indexed 3
# The node that received the latest instance: the one most likely to hold
# work (a study in its quiet period, a claimed job or delivery).
victim=$(sql "SELECT last_node FROM studies ORDER BY last_received_at DESC LIMIT 1")
survivors=()
for n in triaged-1 triaged-2 triaged-3; do [ "$n" = "$victim" ] || survivors+=("$n"); done
held=$(sql "SELECT (SELECT count(*) FROM studies s WHERE last_node = '$victim' AND NOT EXISTS
              (SELECT 1 FROM jobs j WHERE j.study_instance_uid = s.study_instance_uid AND j.state = 'done'))
            || ' unreported studies it received last, '
            || (SELECT count(*) FROM jobs WHERE node = '$victim' AND state IN ('analysing', 'reporting', 'sending')) || ' jobs and '
            || (SELECT count(*) FROM outbox WHERE node = '$victim' AND state = 'sending') || ' deliveries it held'")
"${compose[@]}" kill -s SIGKILL "$victim" >/dev/null
echo "killed $victim (-9): $held" >&2
wait_for "HAProxy takes $victim out" 120 \
  bash -c "${compose[*]} logs --no-color haproxy | grep -q 'triaged_dicom/$victim is DOWN'"
wait_for "the two nodes left list 3 studies" 120 all_nodes_list 3 "${survivors[@]}"

echo "sending 6 studies (3 of them again)" >&2
demo 6
wait_for "the two nodes left list 6 studies" 180 all_nodes_list 6 "${survivors[@]}"
wait_for "an SR in Orthanc for each of the 6 studies" $((lease_secs * 4 + 300)) studies_with_sr 6
settle=$((lease_secs + ${quiet_secs%.*} + 10))
echo "waiting ${settle} s (a lease and a quiet period) for any second SR" >&2
sleep "$settle"

per_study=$(srs_per_study)
echo "$per_study" | awk '{print "study " $1 ": " $2 " SR"}'
studies=$(echo "$per_study" | wc -l)
extra=$(echo "$per_study" | awk '$2 != 1' | wc -l)
for n in "${survivors[@]}"; do
  metrics=$(node "$n" curl -fsS http://127.0.0.1:8642/metrics)
  printf '%s: worklist %s studies; metrics %s, %s instances received, %s deliveries\n' \
    "$n" "$(worklist_total "$n")" "$(grep -m1 -o 'node="[^"]*"' <<<"$metrics" || echo 'without a node label')" \
    "$(awk '/^triaged_instances_received_total/ {s += $2} END {print s + 0}' <<<"$metrics")" \
    "$(awk '/^triaged_deliveries/ && !/dead/ {s += $2} END {print s + 0}' <<<"$metrics")"
done
if [ "$studies" -eq 6 ] && [ "$extra" -eq 0 ]; then
  echo "PASS: 6 studies, exactly one SR each, with $victim killed ($SECONDS s)"
else
  echo "FAIL: $studies studies with an SR, $extra with other than one" >&2
  exit 1
fi
