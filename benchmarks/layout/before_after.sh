#!/usr/bin/env bash
# The same short benchmarks on two checkouts of medsight (before and after a change of layout), at a fixed
# number of epochs so that the machine's load changes the wall time but not the figures:
#   BreastMNIST, default model, 20 epochs, seeds 0 and 1 -> test AUC / ACC
#   MSD Hippocampus fold 0, MONAI unet, 4 epochs of 50 iterations -> validation Dice (no test-time mirroring)
# Usage: benchmarks/layout/before_after.sh SRC_BEFORE SRC_AFTER WORK
set -euo pipefail
BEFORE=${1:?src folder of the first checkout}
AFTER=${2:?src folder of the second checkout}
WORK=${3:?work folder}
SHARED=${SHARED:-/work/shared/data}
export OMP_NUM_THREADS=1
for side in before after; do
  src=$BEFORE; [ "$side" = after ] && src=$AFTER
  for seed in 0 1; do
    run=$WORK/$side/breast_s$seed
    PYTHONPATH=$src python -m medsight train "$SHARED/medmnist/breastmnist.npz" --out "$run" --epochs 20 --seed $seed >/dev/null 2>&1
    PYTHONPATH=$src python -m medsight evaluate "$run" --split test >/dev/null 2>&1
    python -c "import json,sys; m=json.load(open('$run/eval/test/metrics.json')); m=m.get('metrics', m); print('$side', 'breastmnist seed $seed', 'auc', round(m['auc'],4), 'accuracy', round(m['accuracy'],4))"
  done
  run=$WORK/$side/hippo
  PYTHONPATH=$src python -m medsight plan "$SHARED/msd_task04_hippocampus" --out "$run" >/dev/null 2>&1
  python - "$run/plan.json" <<'PY'
import json, sys
plan = json.load(open(sys.argv[1]))
plan["iterations_per_epoch"] = 50
plan["inference"]["tta"] = False
json.dump(plan, open(sys.argv[1], "w"), indent=2)
PY
  PYTHONPATH=$src python -m medsight train "$SHARED/msd_task04_hippocampus" --out "$run" --fold 0 --epochs 4 --model unet >/dev/null 2>&1
  PYTHONPATH=$src python -m medsight evaluate "$run" --split val >/dev/null 2>&1
  python -c "import json; m=json.load(open('$run/eval/val/metrics.json')); m=m.get('metrics', m); print('$side', 'hippocampus fold 0 val', 'dice', round(m['dice'],4))"
done
