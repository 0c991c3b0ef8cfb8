#!/usr/bin/env bash
# Load: SENDERS concurrent storescu processes, each storing N instances
# with fresh UIDs (+II) of a FILE, into a release daemon (no models: this
# measures ingest). Prints failures, instances indexed, throughput and the
# daemon's peak RSS. Usage: bench/load.sh [SENDERS] [N] [FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
senders=${1:-8}
n=${2:-500}
file=${3:-fixtures/generated/ct-small.dcm}
scripts/setup.sh > /dev/null
source bench/common.sh
bin=${TRIAGED_BIN:-$(release_triaged)}
work=$(mktemp -d)
port=$(free_port)
cat > "$work/t.toml" <<TOML
[dicom]
listen = "127.0.0.1:$port"
max_associations = 64
[storage]
dir = "$work/storage"
[models]
dir = "$work/no-models"
[http]
enabled = false
TOML
mkdir -p "$work/no-models"
"${daemon_env[@]}" "$bin" --config "$work/t.toml" serve > "$work/log" 2>&1 & daemon=$!
trap 'kill $daemon 2>/dev/null; sleep 1; rm -rf "$work"' EXIT
until echoscu -aec TRIAGED 127.0.0.1 "$port" 2>/dev/null; do sleep 0.1; done
t0=$(date +%s%N)
pids=()
for i in $(seq "$senders"); do
  TCP_NODELAY=1 storescu --repeat "$n" +II -aec TRIAGED 127.0.0.1 "$port" "$file" > "$work/s$i.log" 2>&1 & pids+=($!)
done
failed=0
for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
t1=$(date +%s%N)
refused=$(cat "$work"/s*.log | grep -c -i "status.*\(failed\|refused\|error\)" || true)
indexed=$(sqlite3 "$work/storage/triaged.db" "select count(*) from instances")
files=$(find "$work/storage" -name '*.dcm' | wc -l)
secs=$(python3 -c "print(f'{($t1-$t0)/1e9:.2f}')")
rate=$(python3 -c "print(round($senders*$n/(($t1-$t0)/1e9)))")
rss=$(peak_rss)
size=$(stat -c %s "$file")
printf '| senders x instances | file | failed senders | failure statuses | indexed | files | seconds | inst/s | daemon peak RSS |\n|---|---|---|---|---|---|---|---|---|\n'
printf '| %d x %d | %s (%d B) | %d | %d | %d | %d | %s | %s | %s |\n' "$senders" "$n" "$(basename "$file")" "$size" "$failed" "$refused" "$indexed" "$files" "$secs" "$rate" "$rss"
