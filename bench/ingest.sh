#!/usr/bin/env bash
# Ingest benchmark: the same files, sent by the same client (DCMTK storescu,
# one association, TCP_NODELAY), into
#   triaged        (storage.flush = "each", the default: fsync of each file
#                   and of its directory, + SQLite index, WAL, FULL, grouped
#                   commits)
#   triaged-group  (storage.flush = "group": one syncfs for every instance
#                   waiting, + the same index)
#   triaged-journal (storage.flush = "journal": one fdatasync'd journal
#                   append for every instance waiting; file, flushes and
#                   index after Success. Its second row, "journal, indexed",
#                   times until the index holds every instance: what the
#                   materialiser sustains, not only what senders see)
#   storescp -od   (DCMTK, writes files, no fsync, no index)
#   Orthanc        (Debian package, its own SQLite index)
# Prints seconds and instances/s (median of RUNS runs) and triaged/storescp,
# the ratio of throughputs (>= 1.0: triaged is at least as fast). "durable
# floor" is storescp's time plus one fdatasync'd write per instance of each
# sender into a preallocated, zero-written file (measured here, on the same
# filesystem): the fastest any server that answers Success only after a
# flush could be, and the ingest journal's limit. The last
# workload but one sends from 4 storescu processes at once (a router with
# several associations); storescp then runs with --fork, one process per
# association. The last sends the large file again while a bulk writer (dd,
# as a backup, a PACS cache or a build would) rewrites a file on the same
# filesystem without pause: the row where "group"'s syncfs, which writes back
# every dirty page of the filesystem, pays for the other writer.
#
#   bench/ingest.sh            # 500 x 526 KB, 2000 x 39 KB, 300 x 526 KB bulk
#   RUNS=1 N_LARGE=100 N_SMALL=200 N_BULK=100 bench/ingest.sh   # quick look
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
RUNS=${RUNS:-3}
N_LARGE=${N_LARGE:-500}
N_SMALL=${N_SMALL:-2000}
N_BULK=${N_BULK:-300}
export TCP_NODELAY=1

source bench/common.sh
# TRIAGED_BIN, if set, is the daemon binary measured (to compare two builds).
TRIAGED=${TRIAGED_BIN:-$(release_triaged)}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/triaged-bench.XXXXXX")
BULK_PID=""
trap '[ -n "$BULK_PID" ] && stop_bulk; kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

wait_port() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }

# Start a server; sets PID and PORT.
start_server() {
  local kind=$1 dir=$2
  PORT=$(free_port)
  mkdir -p "$dir"
  case $kind in
    triaged|triaged-group|triaged-journal)
      local flush=each; [ "$kind" != triaged ] && flush=${kind#triaged-}
      cat >"$dir/triaged.toml" <<TOML
[dicom]
listen = "127.0.0.1:$PORT"
[storage]
dir = "$dir/storage"
flush = "$flush"
[log]
level = "warn"
TOML
      "${daemon_env[@]}" "$TRIAGED" serve --config "$dir/triaged.toml" 2>"$dir/log" & PID=$!
      AE=TRIAGED ;;
    storescp)
      mkdir -p "$dir/out"
      storescp $STORESCP_OPTS -aet STORESCP -od "$dir/out" "$PORT" 2>"$dir/log" & PID=$!
      AE=STORESCP ;;
    orthanc)
      local hp; hp=$(free_port)
      cat >"$dir/orthanc.json" <<JSON
{"Name":"bench","StorageDirectory":"$dir/db","IndexDirectory":"$dir/db","Plugins":[],
 "HttpPort":$hp,"RemoteAccessAllowed":false,"AuthenticationEnabled":false,
 "DicomAet":"ORTHANC","DicomPort":$PORT,"DicomAlwaysAllowStore":true,"SaveJobs":false}
JSON
      Orthanc "$dir/orthanc.json" 2>"$dir/log" >/dev/null & PID=$!
      AE=ORTHANC ;;
  esac
  wait_port "$PORT"
}

stop_server() { kill -TERM "$PID"; wait "$PID" 2>/dev/null || true; }

# Seconds until the index in storage $1 holds $2 instances, from $3 (an
# epoch time): polled every 5 ms, read-only; a run that never gets there
# (an instance acknowledged and lost) fails after 600 s, saying so.
indexed_at() {
  python3 - "$1/triaged.db" "$2" "$3" <<'PY'
import sqlite3, sys, time
db, n, t0 = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
deadline = time.time() + 600
while (got := con.execute("SELECT COUNT(*) FROM instances").fetchone()[0]) < n:
    if time.time() > deadline:
        sys.exit(f"only {got} of {n} acknowledged instances indexed after 600 s")
    time.sleep(0.005)
print(f"{time.time() - t0:.3f}")
PY
}

# One timed run of SENDERS parallel storescu processes; prints seconds to
# the last Success and, for the journal, to the last instance indexed.
timed_run() {
  local kind=$1 file=$2 n=$3 dir=$4
  start_server "$kind" "$dir"
  local t0 t1 pids=()
  t0=$(date +%s.%N)
  for s in $(seq "$SENDERS"); do
    storescu -aec "$AE" --repeat $((n / SENDERS)) +II 127.0.0.1 "$PORT" "$file" 2>"$dir/storescu-$s.log" & pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || { echo "storescu failed against $kind" >&2; exit 1; }; done
  t1=$(date +%s.%N)
  local indexed=""
  if [ "$kind" = triaged-journal ]; then
    indexed=$(indexed_at "$dir/storage" "$n" "$t0") || exit 1
  fi
  stop_server
  python3 -c "print(f'{$t1-$t0:.3f}')" | tr -d '\n'
  echo " $indexed"
}

# Seconds for N flushes of SIZE bytes each, appended to one file on the
# storage's filesystem with fdatasync: the least a server that answers only
# after the instance is on stable storage pays per instance (a journal with
# one flush per instance, the cheapest design issue 26 names).
flush_floor() {
  python3 - "$WORK/floor" "$1" "$2" <<'PY'
import os, sys, time
path, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
block = os.urandom(size)
# As the ingest journal's segments are (docs/ingest-journal.md): allocated
# and written with zeros ahead, untimed, so that each fdatasync flushes data
# only; an append to a growing file also journals its size and extents
# (about twice the cost a flush on this VM's ext4).
stride = -(-size // 4096) * 4096
fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
os.posix_fallocate(fd, 0, stride * n)
zeros = bytes(1 << 20)
for off in range(0, stride * n, len(zeros)):
    os.pwrite(fd, zeros[:min(len(zeros), stride * n - off)], off)
os.fsync(fd)
t0 = time.perf_counter()
for i in range(n):
    os.pwrite(fd, block, i * stride)
    os.fdatasync(fd)
t1 = time.perf_counter()
os.close(fd)
os.unlink(path)
print(f"{t1 - t0:.3f}")
PY
}

# A bulk writer on the storage's filesystem until stop_bulk: a 2000 MB file
# written again and again, never flushed by the writer itself.
start_bulk() {
  ( while :; do dd if=/dev/zero of="$WORK/bulk" bs=1M count=2000 status=none; done ) &
  BULK_PID=$!
}
# The loop first, then its dd (which would otherwise write on alone).
stop_bulk() {
  local dd; dd=$(pgrep -P "$BULK_PID" || true)
  kill "$BULK_PID" $dd 2>/dev/null || true
  wait "$BULK_PID" 2>/dev/null || true; BULK_PID=""; rm -f "$WORK/bulk"
}

printf '%-36s %-17s %9s %11s %17s\n' workload server seconds "inst/s" "triaged/storescp"
for workload in "large fixtures/generated/ct-693.dcm $N_LARGE 1 quiet" \
                "small fixtures/generated/ct-small.dcm $N_SMALL 1 quiet" \
                "small4 fixtures/generated/ct-small.dcm $N_SMALL 4 quiet" \
                "bulk fixtures/generated/ct-693.dcm $N_BULK 1 bulk"; do
  set -- $workload
  name=$1 file=$2 n=$3 SENDERS=$4 beside=$5
  STORESCP_OPTS=""; [ "$SENDERS" -gt 1 ] && STORESCP_OPTS="--fork"
  size_kb=$(( $(stat -c %s "$file") / 1024 ))
  [ "$beside" = bulk ] && start_bulk
  declare -A secs=()
  for kind in triaged triaged-group triaged-journal storescp orthanc; do
    runs=() indexed=()
    for r in $(seq "$RUNS"); do
      read -r t i < <(timed_run "$kind" "$file" "$n" "$WORK/$kind-$name-$r")
      runs+=("$t"); [ -n "$i" ] && indexed+=("$i")
      rm -rf "$WORK/$kind-$name-$r"
    done
    secs[$kind]=$(median "${runs[@]}")
    [ "${#indexed[@]}" -gt 0 ] && secs["journal, indexed"]=$(median "${indexed[@]}")
  done
  for kind in triaged triaged-group triaged-journal "journal, indexed" storescp orthanc; do
    ips=$(python3 -c "print(f'{$n/${secs[$kind]}:.0f}')")
    ratio=""
    [[ "$kind" = triaged* || "$kind" = journal* ]] && ratio=$(python3 -c "print(f'{${secs[storescp]}/${secs[$kind]}:.2f}')")
    label="${n}x${size_kb}KB"; [ "$SENDERS" -gt 1 ] && label="$label, $SENDERS senders"
    [ "$beside" = bulk ] && label="$label, bulk writer beside"
    printf '%-36s %-17s %9s %11s %17s\n' "$label" "$kind" "${secs[$kind]}" "$ips" "$ratio"
  done
  # Each sender waits for each answer, so one flush can cover at most one
  # instance of each: storescp's time plus n/SENDERS flushes (of SENDERS
  # instances each) bounds any durable server from below.
  flush=$(flush_floor $((n / SENDERS)) $(($(stat -c %s "$file") * SENDERS)))
  read -r floor ips ratio < <(python3 -c "f = ${secs[storescp]} + $flush; print(f'{f:.3f} {$n / f:.0f} {${secs[storescp]} / f:.2f}')")
  [ "$beside" = bulk ] && stop_bulk
  printf '%-36s %-17s %9s %11s %17s\n' "$label" "durable floor" "$floor" "$ips" "$ratio"
  unset secs
done
