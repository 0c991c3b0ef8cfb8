#!/usr/bin/env bash
# Cluster throughput (issue 21): release nodes on one PostgreSQL server
# (fsync on) and one storage folder, all on this machine, beside one
# SQLite node for reference.
#   ingest:    SENDERS storescu processes (fresh UIDs, a new study every 50
#              images) spread over the nodes, no models: instances/s until
#              the last Success, and PostgreSQL's WAL fsyncs per instance
#              (pg_stat_wal: group commit shows as fewer than one)
#   analysis:  STUDIES phantom CR/DX studies spread over the nodes, the
#              bundled models: studies/s from the first C-STORE until every
#              job is done, less the quiet period
# Every node runs on the same cores: on a small machine the table shows
# what coordination costs, not what more machines gain (docs/performance.md
# has the model for N machines).
#
#   bench/cluster.sh                      # 2000 x 39 KB, 4 senders; 40 studies; 1 2 3 nodes
#   N=400 STUDIES=10 NODES="1 2" bench/cluster.sh   # quick look
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
N=${N:-2000}
SENDERS=${SENDERS:-4}
STUDIES=${STUDIES:-40}
NODES=${NODES:-"1 2 3"}
QUIET=0.5
FILE=fixtures/generated/ct-small.dcm

source bench/common.sh
TRIAGED=$(release_triaged)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/triaged-cluster.XXXXXX")
PGDIR=$(mktemp -d "${TMPDIR:-/tmp}/triaged-pg.XXXXXX")
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  bash scripts/postgres.sh stop "$PGDIR" || true
  rm -rf "$WORK" "$PGDIR"
}
trap cleanup EXIT
SERVER=$(POSTGRES_FSYNC=on bash scripts/postgres.sh start "$PGDIR" | sed 's/^export TRIAGED_TEST_POSTGRES=//')
mkdir -p "$WORK/no-models"
"$TRIAGED" phantom --out "$WORK/cases" --count "$STUDIES" --pitch 0.2 >/dev/null 2>&1
mapfile -t CASES < <(ls "$WORK"/cases/*.dcm)

wait_port() { until echoscu -aec TRIAGED 127.0.0.1 "$1" 2>/dev/null; do sleep 0.1; done; }
now() { date +%s.%N; }
psql_q() { psql -X -q -t -A "$1" -c "$2"; }

# start_nodes BACKEND COUNT RUN MODELS: sets PORTS, PIDS and QUERY (a
# command that runs SQL on the run's database).
start_nodes() {
  local backend=$1 count=$2 run=$3 models=$4 db=""
  local storage="$WORK/$run/storage"
  mkdir -p "$storage"
  PORTS=(); PIDS=()
  if [ "$backend" = postgres ]; then
    psql_q "$SERVER/postgres" "CREATE DATABASE $run" >/dev/null
    db="[database]
url = \"$SERVER/$run\""
    QUERY="psql_q $SERVER/$run"
  else
    QUERY="sqlite3 $storage/triaged.db"
  fi
  for i in $(seq "$count"); do
    local port; port=$(free_port)
    cat >"$WORK/$run/node-$i.toml" <<TOML
[dicom]
listen = "127.0.0.1:$port"
max_associations = 64
[storage]
dir = "$storage"
$db
[node]
name = "node-$i"
[http]
listen = "127.0.0.1:0"
[pipeline]
quiet_secs = $QUIET
[models]
dir = "$models"
[log]
level = "warn"
TOML
    "${daemon_env[@]}" "$TRIAGED" --config "$WORK/$run/node-$i.toml" serve 2>"$WORK/$run/node-$i.log" & PIDS+=($!)
    PORTS+=("$port")
    # One at a time: the first migrates.
    wait_port "$port"
  done
}

stop_nodes() { kill -TERM "${PIDS[@]}"; wait "${PIDS[@]}" 2>/dev/null || true; }

wal_syncs() { psql_q "$SERVER/postgres" "SELECT wal_sync FROM pg_stat_wal"; }

# ingest BACKEND COUNT: prints "inst/s wal-fsyncs-per-instance".
ingest() {
  local backend=$1 count=$2 run="ingest_${1}_$2" pids=() s0 s1 t0 t1
  start_nodes "$backend" "$count" "$run" "$WORK/no-models"
  s0=$([ "$backend" = postgres ] && wal_syncs || echo 0)
  t0=$(now)
  for s in $(seq "$SENDERS"); do
    local port=${PORTS[$(( (s - 1) % count ))]}
    TCP_NODELAY=1 storescu -aec TRIAGED --repeat $((N / SENDERS)) +IS 50 127.0.0.1 "$port" "$FILE" \
      >"$WORK/$run/storescu-$s.log" 2>&1 & pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || { echo "storescu failed ($run)" >&2; exit 1; }; done
  t1=$(now)
  sleep 1   # PostgreSQL's statistics reach pg_stat_wal within a second
  s1=$([ "$backend" = postgres ] && wal_syncs || echo 0)
  local indexed; indexed=$($QUERY "SELECT COUNT(*) FROM instances")
  [ "$indexed" -eq $(( N / SENDERS * SENDERS )) ] || { echo "$run: $indexed indexed" >&2; exit 1; }
  stop_nodes
  python3 -c "
n=$indexed; secs=$t1-$t0
syncs = f'{($s1-$s0)/n:.2f}' if '$backend' == 'postgres' else '-'
print(f'{n/secs:.0f} {syncs}')"
}

# analysis BACKEND COUNT: prints studies/s.
analysis() {
  local backend=$1 count=$2 run="analysis_${1}_$2" pids=() t0 t1
  start_nodes "$backend" "$count" "$run" "$PWD/models"
  t0=$(now)
  for i in $(seq "$count"); do
    local files=()
    for k in $(seq $((i - 1)) "$count" $((STUDIES - 1))); do files+=("${CASES[$k]}"); done
    TCP_NODELAY=1 storescu -aec TRIAGED 127.0.0.1 "${PORTS[$((i - 1))]}" "${files[@]}" \
      >"$WORK/$run/storescu-$i.log" 2>&1 & pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || { echo "storescu failed ($run)" >&2; exit 1; }; done
  until [ "$($QUERY "SELECT COUNT(*) FROM jobs WHERE state IN ('done', 'not_applicable')")" -ge "$STUDIES" ]; do
    sleep 0.05
  done
  t1=$(now)
  stop_nodes
  python3 -c "print(f'{$STUDIES/($t1-$t0-$QUIET):.1f}')"
}

printf '| database | nodes | ingest inst/s (%d x %d KB, %d senders) | WAL fsyncs / instance | analysis studies/s (%d CR/DX) |\n' \
  "$N" $(( $(stat -c %s "$FILE") / 1024 )) "$SENDERS" "$STUDIES"
printf '|---|---|---|---|---|\n'
read -r ips syncs < <(ingest sqlite 1)
printf '| SQLite | 1 | %s | %s | %s |\n' "$ips" "$syncs" "$(analysis sqlite 1)"
for n in $NODES; do
  read -r ips syncs < <(ingest postgres "$n")
  printf '| PostgreSQL | %d | %s | %s | %s |\n' "$n" "$ips" "$syncs" "$(analysis postgres "$n")"
done
printf '\n%d cores; storage and PostgreSQL on the same local disk.\n' "$(nproc)"
