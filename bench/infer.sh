#!/usr/bin/env bash
# Forward pass, 1 x 224 x 224, DenseNet-121 and ResNet-50 (1 channel, 18
# classes), same formula weights everywhere: candle (crates/infer) against
# PyTorch CPU and onnxruntime, batch 1 and 8, 1 and 2 threads. Installs
# PyTorch, torchvision and onnxruntime into bench/.venv-torch (large).
#
#   bench/infer.sh          # RUNS=5
set -euo pipefail
cd "$(dirname "$0")/.."
V=bench/.venv-torch
if [ ! -x $V/bin/python ] || ! $V/bin/python -c "import torch, torchvision, onnx, onnxruntime" 2>/dev/null; then
  python3 -m venv $V
  $V/bin/pip install -q torch==2.15.0 onnx onnxruntime numpy pillow
  # torchvision's pinned torch differs; only its model definitions are used.
  $V/bin/pip install -q --no-deps torchvision==0.29.2
fi
export RUNS=${RUNS:-5}
printf '%-12s %6s %8s %10s %10s %12s %14s %14s\n' model batch threads "candle ms" "torch ms" "onnxrt ms" "candle/torch" "candle/onnxrt"
for threads in 1 2; do
  for batch in 1 8; do
    candle=$(RAYON_NUM_THREADS=$threads BATCH=$batch cargo bench -q -p triaged-infer --bench forward)
    py=$(OMP_NUM_THREADS=$threads $V/bin/python bench/infer_python.py "$threads" "$batch" 2>/dev/null)
    for model in densenet121 resnet50; do
      c=$(echo "$candle" | awk -v m=$model '$1==m {print $3}')
      t=$(echo "$py" | awk -v m=$model '$1=="pytorch" && $2==m {print $4}')
      o=$(echo "$py" | awk -v m=$model '$1=="onnxruntime" && $2==m {print $4}')
      printf '%-12s %6s %8s %10s %10s %12s %14s %14s\n' $model $batch $threads "$c" "$t" "$o" \
        "$(python3 -c "print(f'{$c/$t:.2f}')")" "$(python3 -c "print(f'{$c/$o:.2f}')")"
    done
  done
done
