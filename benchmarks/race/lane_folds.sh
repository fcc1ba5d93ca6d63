#!/usr/bin/env bash
# The five hippocampus folds at 30 minutes each, one torch thread per run: FOLDS="1 2 3 4" lane_folds.sh OUT
set -x
cd "$(dirname "$0")/../.."
export MEDSIGHT_SRC=${MEDSIGHT_SRC:-$PWD/src} PYTHONPATH=${MEDSIGHT_SRC:-$PWD/src} OMP_NUM_THREADS=1
OUT=${1:?output folder}
for F in ${FOLDS:-0 1 2 3 4}; do
  date; FOLD=$F bash benchmarks/race/run.sh hippocampus "$OUT/fold$F" 30; date
done
echo LANE_FOLDS_DONE
