#!/usr/bin/env bash
# Forward-pass time of DenseNet-121 (224²) and ResNet-50 (224² and 512²),
# 1 channel, 18 classes, the same formula weights everywhere: triaged's fast
# CPU path, candle's own ops and the ONNX export on tract
# (crates/infer/benches/forward.rs) against PyTorch CPU and onnxruntime (the
# same .onnx file as tract); batch 1 and 8, 1 and 2 threads. Prints a
# Markdown table (median of RUNS passes after a warm-up; RUNS=5 at batch 1,
# 3 at batch 8 unless set). Installs PyTorch, torchvision and onnxruntime
# into bench/.venv-torch (large, once).
#
#   bench/infer.sh
#   THREADS="2" BATCHES="1" bench/infer.sh     # a quicker subset
#   BACKENDS=fast,tract CASES="densenet121:224" bench/infer.sh  # no candle, one case
set -euo pipefail
cd "$(dirname "$0")/.."
V=bench/.venv-torch
if [ ! -x $V/bin/python ] || ! $V/bin/python -c "import torch, torchvision, onnx, onnxruntime" 2>/dev/null; then
  python3 -m venv $V
  $V/bin/pip install -q torch==2.15.0 onnx onnxruntime numpy pillow
  # torchvision's pinned torch differs; only its model definitions are used.
  $V/bin/pip install -q --no-deps torchvision==0.29.2
fi
cargo bench -q -p triaged-infer --bench forward --no-run 2>/dev/null
ratio() { if [ -n "$1" ] && [ -n "$2" ]; then python3 -c "print(f'{$1/$2:.2f}')"; else echo "–"; fi; }
ONNX_DIR=$(mktemp -d)
trap 'rm -rf "$ONNX_DIR"' EXIT
export ONNX_DIR
echo "| model | size | batch | threads | candle ms | fast ms | tract (ONNX) ms | PyTorch ms | onnxruntime ms | fast / PyTorch | fast / onnxruntime | tract / onnxruntime | candle / fast |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for threads in ${THREADS:-1 2}; do
  for batch in ${BATCHES:-1 8}; do
    runs=${RUNS:-$([ "$batch" = 1 ] && echo 5 || echo 3)}
    for case in ${CASES:-densenet121:224 resnet50:224 resnet50:512}; do
      model=${case%:*} size=${case#*:}
      # Python first: it exports the graph tract then runs.
      py=$(RUNS=$runs OMP_NUM_THREADS=$threads $V/bin/python bench/infer_python.py \
        "$threads" "$batch" "$size" "$model" 2>/dev/null)
      ours=$(RUNS=$runs RAYON_NUM_THREADS=$threads BATCH=$batch SIZE=$size MODELS=$model \
        BACKENDS=${BACKENDS:-fast,candle,tract} cargo bench -q -p triaged-infer --bench forward)
      f=$(echo "$ours" | awk '$4=="fast" {print $5}')
      c=$(echo "$ours" | awk '$4=="candle" {print $5}')
      x=$(echo "$ours" | awk '$4=="tract" {print $5}')
      t=$(echo "$py" | awk '$1=="pytorch" {print $5}')
      o=$(echo "$py" | awk '$1=="onnxruntime" {print $5}')
      echo "| $model | $size² | $batch | $threads | $c | $f | $x | $t | $o | $(ratio "$f" "$t") | $(ratio "$f" "$o") | $(ratio "$x" "$o") | $(ratio "$c" "$f") |"
    done
  done
done
