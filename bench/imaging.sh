#!/usr/bin/env bash
# Decode + xrv preprocessing (224x224), triaged's imaging crate against the
# Python reference path (pydicom + pylibjpeg/openjpeg + numpy), same files,
# same run. Median of RUNS runs. Python runs on one thread; Rust is timed on
# one thread and with JPEG 2000 allowed two; the ratio compares one thread
# with one thread (> 1: Rust is faster).
#
#   bench/imaging.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
export RUNS=${RUNS:-5}
D="$PWD/fixtures/generated/imaging"
FILES=("$D/RG1_UNCI.dcm" "$D/RG1_J2KR.dcm" "$D/693_UNCI.dcm" "$D/693_J2KR.dcm" "$D/MR_small_jpeg_ls_lossless.dcm")
rust=$(J2K_THREADS=1 cargo bench -q -p triaged-imaging --bench decode -- "${FILES[@]}")
rust2=$(J2K_THREADS=2 cargo bench -q -p triaged-imaging --bench decode -- "${FILES[@]}")
python=$(OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/imaging_python.py "${FILES[@]}")
printf '%-34s %10s %12s %12s %14s\n' file "Rust ms" "Rust 2t ms" "Python ms" "Python/Rust"
join -t $'\t' <(echo "$rust" | sort) <(echo "$rust2" | sort) | join -t $'\t' - <(echo "$python" | sort) |
  while IFS=$'\t' read -r name r r2 p; do
    printf '%-34s %10s %12s %12s %14s\n' "$name" "$r" "$r2" "$p" "$(python3 -c "print(f'{$p/$r:.2f}')")"
  done
