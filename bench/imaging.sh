#!/usr/bin/env bash
# Decode + xrv preprocessing (224x224), triaged's imaging crate against the
# Python reference path (pydicom + pylibjpeg/openjpeg + numpy), same files,
# same run, one thread each. Median of RUNS runs; ratio > 1: Rust is faster.
#
#   bench/imaging.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
export RUNS=${RUNS:-5}
D="$PWD/fixtures/generated/imaging"
FILES=("$D/RG1_UNCI.dcm" "$D/RG1_J2KR.dcm" "$D/693_UNCI.dcm" "$D/693_J2KR.dcm" "$D/MR_small_jpeg_ls_lossless.dcm")
rust=$(RAYON_NUM_THREADS=1 cargo bench -q -p triaged-imaging --bench decode -- "${FILES[@]}")
python=$(OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/imaging_python.py "${FILES[@]}")
printf '%-34s %10s %12s %14s\n' file "Rust ms" "Python ms" "Python/Rust"
join -t $'\t' <(echo "$rust" | sort) <(echo "$python" | sort) | while IFS=$'\t' read -r name r p; do
  printf '%-34s %10s %12s %14s\n' "$name" "$r" "$p" "$(python3 -c "print(f'{$p/$r:.2f}')")"
done
