#!/usr/bin/env bash
# Run every fuzz target for SECONDS each (nightly + cargo-fuzz), seeded
# from fuzz/seeds and the test fixtures; print a table of executions and
# crashes. Crash inputs land in fuzz/artifacts/<target>/: minimise them
# (`cargo +nightly fuzz tmin <target> <file>`), fix the bug, and copy the
# reproducer to fuzz/regressions/<target>/ so tests/fuzz_replay.rs keeps
# it fixed.  Usage: fuzz/run.sh [SECONDS]   (needs: rustup toolchain
# install nightly; cargo install cargo-fuzz)
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-120}
../scripts/setup.sh > /dev/null
corpus=corpus
mkdir -p "$corpus"/{pdu,dataset,pixels}
cp -n seeds/pdu/* "$corpus/pdu/"
python3 - "$corpus" <<'PY'
import glob, os, sys
out = sys.argv[1]
for f in sorted(glob.glob("../fixtures/generated/*.dcm") + glob.glob("../fixtures/generated/imaging/*.dcm")):
    data = open(f, "rb").read()
    name = os.path.basename(f)
    if data[128:132] == b"DICM":
        end = 144 + int.from_bytes(data[140:144], "little")
        # First byte: the transfer syntax the dataset target negotiates
        # (0 explicit LE, 1 implicit LE, 2 deflate, 3 big endian).
        ts = data[:end].split(b"1.2.840.10008.1.2")[-1][:6]
        pick = {b".1.99": 2, b".2": 3}.get(ts.rstrip(b"\0 ")[:5], 0)
        if ts[:1] in (b"\0", b" "):
            pick = 1
        for target in ("dataset", "pixels"):
            open(os.path.join(out, target, name), "wb").write(bytes([pick]) + data[end:])
PY
printf '| target | seconds | executions | exec/s | corpus | crashes |\n|---|---:|---:|---:|---:|---:|\n'
for t in pdu dataset pixels; do
  log=$(mktemp)
  cargo +nightly fuzz run "$t" "$corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=2048 -timeout=20 \
    -print_final_stats=1 > "$log" 2>&1 || true
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  crashes=$(ls artifacts/"$t" 2>/dev/null | wc -l)
  printf '| %s | %s | %s | %s | %s | %s |\n' "$t" "$secs" "$execs" "$rate" "$(ls "$corpus/$t" | wc -l)" "$crashes"
  grep -E "^==[0-9]+==ERROR|panicked at|SUMMARY" "$log" | head -3 || true
done
