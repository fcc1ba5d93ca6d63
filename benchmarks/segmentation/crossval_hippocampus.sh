#!/usr/bin/env bash
# Five-fold cross-validation of MSD Task04 Hippocampus with one command: one plan for all folds, the folds'
# out-of-fold Dice with bootstrap intervals, and the five folds' ensemble on held-back test cases.
# The shared folder holds nnU-Net's splits_final.json, whose five folds use all 260 cases and leave no test
# split, so the run reads a view of the folder (links to dataset.json, imagesTr, labelsTr) without it:
# medsight then holds back a fifth of the cases as test (fixed split seed 12345) and makes five folds of the
# rest, and writes them to VIEW/splits_final.json. A rerun continues: finished folds are skipped (the results in
# crossval_hippocampus.md were evaluated with "tta": false set in cv/plan.json and cv/fold_K/plan.json before
# the rerun; see there).
set -euo pipefail
WORK=${1:?work folder}
MINUTES=${2:-5}
DATA=/work/shared/data/msd_task04_hippocampus
mkdir -p "$WORK/data"
for f in dataset.json imagesTr labelsTr; do ln -sfn "$DATA/$f" "$WORK/data/$f"; done
OMP_NUM_THREADS=1 medsight crossval "$WORK/data" --out "$WORK/cv" --folds 5 --minutes "$MINUTES" --parallel 2
