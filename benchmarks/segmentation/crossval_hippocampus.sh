#!/usr/bin/env bash
# Five-fold cross-validation of MSD Task04 Hippocampus with one command: one plan for all folds, the folds'
# out-of-fold Dice with bootstrap intervals, and the five folds' ensemble on held-back test cases.
# The shared folder holds nnU-Net's splits_final.json, whose five folds use all 260 cases and leave no test
# split, so the run reads a view of the folder (links to dataset.json, imagesTr, labelsTr) without it:
# medsight then holds back a fifth of the cases as test (fixed split seed 12345) and makes five folds of the
# rest, and writes them to VIEW/splits_final.json. A rerun continues: finished folds are skipped.
# Usage: crossval_hippocampus.sh WORK [MINUTES_PER_FOLD] [EPOCHS_PER_FOLD] [PARALLEL]
# Each fold trains EPOCHS epochs, fewer where MINUTES run out first (the cores are shared).
# The plan is written first (as `crossval` would) with mirrored test-time augmentation off: 8 passes a case
# would make the evaluation of 5 x 42 validation cases, 5 x 52 test cases and the ensemble outlast the training
# on two shared cores. Scores are therefore those of single-pass inference.
set -euo pipefail
WORK=${1:?work folder}
MINUTES=${2:-5}
EPOCHS=${3:-5}
PARALLEL=${4:-1}
DATA=/work/shared/data/msd_task04_hippocampus
mkdir -p "$WORK/data" "$WORK/cv"
for f in dataset.json imagesTr labelsTr; do ln -sfn "$DATA/$f" "$WORK/data/$f"; done
export OMP_NUM_THREADS=1
if [ ! -f "$WORK/cv/plan.json" ]; then
python - "$WORK/data" "$WORK/cv" <<'PY'
import sys
from medsight.data.splits import planning_view, save_generated
from medsight.io.formats import read_dataset
from medsight.run import RunFolder
from medsight.tasks.registry import get_task
dataset = read_dataset(sys.argv[1])
save_generated(dataset, print)
plan = get_task(dataset.task).make_plan(planning_view(dataset))
plan["inference"]["tta"] = False
RunFolder(sys.argv[2]).save_plan(plan)
PY
fi
python -m medsight crossval "$WORK/data" --out "$WORK/cv" --folds 5 --minutes "$MINUTES" --epochs "$EPOCHS" --parallel "$PARALLEL"
