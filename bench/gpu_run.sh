#!/usr/bin/env bash
# The GPU measurements, on a machine with one NVIDIA GPU: one command per part, each under ten
# minutes, results under $OUT (bench/results when unset).
#
# First, where ../shared/datasets/ucm_mlc is:   python bench/pack_ucm.py   (UCM re-encoded into .ucm/)
# then, on the GPU machine, with .ucm/ copied into the checkout:
#     bash bench/gpu_run.sh bench      # bench/bench_gpu.py: step and loop throughput
#     bash bench/gpu_run.sh quality    # recipes/ucm_gpu.yaml at 10 % labeled: test macro AUPRC, minutes
#     bash bench/gpu_run.sh quality-visible | curve
# Then copy $OUT's files into bench/results/ and tabulate them in docs/benchmarks.md, docs/results.md.
#
# The machine needs torch, timm, lightning, pandas, pyarrow and scikit-learn, not mlflow, kfp or
# dvc: training runs from the source tree with tracking off.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=.
OUT=${OUT:-bench/results}
DATA=${DATA:-.ucm/ucm_mlc}
RECIPE=${RECIPE:-recipes/ucm_gpu.yaml}
PY=${PYTHON:-python}
WORK=${WORK:-/tmp/sslmae-gpu}  # runs, splits and the image cache of each part
mkdir -p "$OUT"
[ -f "$DATA/labels.csv" ] || { echo "gpu_run: $DATA/labels.csv missing: run bench/pack_ucm.py and carry .ucm" >&2; exit 2; }
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv > "$OUT/gpu_info.csv" 2>/dev/null || echo "no nvidia-smi here"
"$PY" -c 'import torch, timm, lightning; print("torch", torch.__version__, "timm", timm.__version__, "lightning", lightning.__version__)' | tee "$OUT/versions.txt"

case "${1:-}" in
  bench)  # training steps (the targets' figures first), then the real loop on UCM; ~8 min
    timeout 300 "$PY" bench/bench_gpu.py --no-e2e --budget-s 240 --out "$OUT" || echo "steps stopped early (rc $?)"
    timeout 200 "$PY" bench/bench_gpu.py --models --e2e-models small base --data "$DATA" --workers 12 --out "$OUT"
    ;;
  quality)  # the issue's run: 10 % of split_seed42's train labeled, no pretrained weights, <= 5 min
    timeout 400 "$PY" bench/bench_quality.py --data "$DATA" --params "$RECIPE" --fractions 0.1 \
      --modes semi_supervised --work "$WORK/quality" --out "$OUT"
    ;;
  quality-visible)  # the same with the visible_only extension (the best variant on the CPU)
    timeout 400 "$PY" bench/bench_quality.py --data "$DATA" --params "$RECIPE" --fractions 0.1 \
      --modes semi_supervised --work "$WORK/quality_visible" --out "$OUT" model.variant=visible_only
    ;;
  curve)  # the label-fraction curve with the same recipe (every semi run costs as much as the 10 % one)
    timeout 580 "$PY" bench/bench_quality.py --data "$DATA" --params "$RECIPE" --fractions 0.01 0.05 0.25 \
      --work "$WORK/curve" --out "$OUT" --plot "$OUT/fractions_gpu.png" "${@:2}"
    ;;
  *) echo "usage: bash bench/gpu_run.sh bench|quality|quality-visible|curve [overrides for curve]" >&2; exit 2 ;;
esac
