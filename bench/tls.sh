#!/usr/bin/env bash
# DICOM TLS ingest benchmark: the same files, sent by the same client (DCMTK
# storescu +tls with a client certificate, one association, TCP_NODELAY), to
#   triaged tls     triaged's TLS port (client certificates required)
#   triaged plain   triaged's plain port, for the cost of TLS itself
#   storescp tls    DCMTK storescp +tls -od (OpenSSL, no fsync, no index)
# Prints seconds and instances/s, the median of RUNS runs.
#
#   bench/tls.sh                          # 300 x 526 KB CT and 1000 x 39 KB CT
#   TRIAGED=/path/to/triaged bench/tls.sh # another build (e.g. an older one)
#   RUNS=1 N_LARGE=50 N_SMALL=200 bench/tls.sh   # quick look
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
RUNS=${RUNS:-3}
N_LARGE=${N_LARGE:-300}
N_SMALL=${N_SMALL:-1000}
export TCP_NODELAY=1

source bench/common.sh
TRIAGED=${TRIAGED:-$(release_triaged)}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/triaged-tls-bench.XXXXXX")
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

CERTS="$WORK/certs"; mkdir -p "$CERTS"
# A CA, a server certificate for 127.0.0.1 and a client certificate.
(
  cd "$CERTS"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -subj "/CN=bench ca" -days 2 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > server.ext
  printf 'extendedKeyUsage=clientAuth\n' > client.ext
  for n in server client; do
    openssl req -newkey rsa:2048 -nodes -keyout $n.key -out $n.csr -subj "/CN=bench $n" 2>/dev/null
    openssl x509 -req -in $n.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out $n.pem -days 2 -extfile $n.ext 2>/dev/null
  done
)
TLS_CLIENT=(+tls "$CERTS/client.key" "$CERTS/client.pem" +cf "$CERTS/ca.pem")

# Start a server; sets PID, PORT, AE and CLIENT (storescu's TLS options).
start_server() {
  local kind=$1 dir=$2
  mkdir -p "$dir"
  case $kind in
    "triaged tls"|"triaged plain")
      local plain tls; plain=$(free_port); tls=$(free_port)
      cat >"$dir/triaged.toml" <<TOML
[dicom]
listen = "127.0.0.1:$plain"
[dicom.tls]
listen = "127.0.0.1:$tls"
certificate = "$CERTS/server.pem"
private_key = "$CERTS/server.key"
client_ca = "$CERTS/ca.pem"
[storage]
dir = "$dir/storage"
[http]
enabled = false
[log]
level = "warn"
TOML
      "${daemon_env[@]}" "$TRIAGED" serve --config "$dir/triaged.toml" 2>"$dir/log" & PID=$!
      AE=TRIAGED
      if [ "$kind" = "triaged tls" ]; then PORT=$tls; CLIENT=("${TLS_CLIENT[@]}"); else PORT=$plain; CLIENT=(); fi ;;
    "storescp tls")
      PORT=$(free_port)
      mkdir -p "$dir/out"
      storescp +tls "$CERTS/server.key" "$CERTS/server.pem" +cf "$CERTS/ca.pem" -aet STORESCP -od "$dir/out" "$PORT" 2>"$dir/log" & PID=$!
      AE=STORESCP; CLIENT=("${TLS_CLIENT[@]}") ;;
  esac
  for _ in $(seq 400); do
    echoscu "${CLIENT[@]}" -aec "$AE" 127.0.0.1 "$PORT" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "$kind never answered C-ECHO" >&2; cat "$dir/log" >&2; exit 1
}

stop_server() { kill -TERM "$PID"; wait "$PID" 2>/dev/null || true; }

# One timed run; prints seconds.
timed_run() {
  local kind=$1 file=$2 n=$3 dir=$4
  start_server "$kind" "$dir"
  local t0 t1
  t0=$(date +%s.%N)
  storescu "${CLIENT[@]}" -aec "$AE" --repeat "$n" +II 127.0.0.1 "$PORT" "$file" 2>"$dir/storescu.log" \
    || { echo "storescu failed against $kind" >&2; cat "$dir/storescu.log" "$dir/log" >&2; exit 1; }
  t1=$(date +%s.%N)
  stop_server
  python3 -c "print(f'{$t1-$t0:.3f}')"
}

echo "triaged: $TRIAGED"
printf '%-16s %-14s %9s %9s %9s\n' workload server seconds "inst/s" "MB/s"
for workload in "large fixtures/generated/ct-693.dcm $N_LARGE" \
                "small fixtures/generated/ct-small.dcm $N_SMALL"; do
  set -- $workload
  name=$1 file=$2 n=$3
  size=$(stat -c %s "$file")
  for kind in "triaged tls" "triaged plain" "storescp tls"; do
    runs=()
    for r in $(seq "$RUNS"); do
      d="$WORK/${kind// /-}-$name-$r"
      runs+=("$(timed_run "$kind" "$file" "$n" "$d")")
      rm -rf "$d"
    done
    secs=$(median "${runs[@]}")
    python3 -c "n=$n; s=$secs; print(f'{str(n)+\"x\"+str($size//1024)+\"KB\":<16} {\"$kind\":<14} {s:9.3f} {n/s:9.0f} {n*$size/s/1e6:9.1f}')"
  done
done
