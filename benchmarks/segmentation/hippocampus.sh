#!/usr/bin/env bash
# MSD Task04 Hippocampus, fold 0 of nnU-Net's splits_final.json (208 train / 52 val), trained on the CPU
# for a fixed number of minutes, then evaluated on the 52 validation cases (mirror TTA, resampled to the
# source grid, MONAI metrics). Usage: benchmarks/segmentation/hippocampus.sh RUN MINUTES [MODEL] [FOLD]
set -euo pipefail
RUN=${1:?run folder}
MINUTES=${2:?training minutes}
MODEL=${3:-dynunet_lite}
FOLD=${4:-0}
DATA=${DATA:-/work/shared/data/msd_task04_hippocampus}
# one thread: on the 2 shared cores (load average ~15 from other work) two OpenMP threads spin-wait for each
# other and a training step took 13 s instead of 3.3 s
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
medsight plan "$DATA" --out "$RUN"
# validate on all 52 validation cases every 50 iterations, so log.csv gives Dice against training minutes
python - "$RUN/plan.json" <<'PY'
import json, sys
path = sys.argv[1]
plan = json.load(open(path))
plan["validation_cases"] = 52
plan["iterations_per_epoch"] = 50
json.dump(plan, open(path, "w"), indent=2)
PY
start=$(date +%s)
medsight train "$DATA" --out "$RUN" --fold "$FOLD" --minutes "$MINUTES" --model "$MODEL"
echo "train_wall_seconds $(( $(date +%s) - start ))"
start=$(date +%s)
medsight evaluate "$RUN" --split val
echo "evaluate_wall_seconds $(( $(date +%s) - start ))"
