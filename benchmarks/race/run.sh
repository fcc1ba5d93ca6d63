#!/usr/bin/env bash
# The --minutes race on real data, as a user runs it: train --minutes M (the race, then the winner), evaluate.
# Usage: [FOLD=F] [SEED=S] benchmarks/race/run.sh hippocampus OUT MINUTES | benchmarks/race/run.sh breastmnist OUT MINUTES SEED...
set -euo pipefail
export PYTHONPATH=${MEDSIGHT_SRC:-$PWD/src}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
WHAT=${1:?hippocampus or breastmnist}; OUT=${2:?output folder}; MINUTES=${3:?minutes}; shift 3
DATA_ROOT=${DATA_ROOT:-/work/shared/data}
mkdir -p "$OUT"
case "$WHAT" in
  hippocampus)  # fold FOLD (default 0) of the data's splits_final.json (208 train / 52 val; no test split): scored on val
    uptime
    python -m medsight train "$DATA_ROOT/msd_task04_hippocampus" --out "$OUT/run" --fold "${FOLD:-0}" --seed "${SEED:-0}" --minutes "$MINUTES"
    uptime
    python -m medsight evaluate "$OUT/run" --split val > "$OUT/eval.json"
    uptime ;;
  breastmnist)  # the official 546 / 78 / 156 splits: scored on test
    for SEED in "$@"; do
      uptime
      python -m medsight train "$DATA_ROOT/medmnist/breastmnist.npz" --out "$OUT/seed$SEED" --seed "$SEED" --minutes "$MINUTES"
      uptime
      python -m medsight evaluate "$OUT/seed$SEED" > "$OUT/seed$SEED.eval.json"
    done ;;
esac
