#!/usr/bin/env bash
# Hippocampus fold 0 on 2 cores as two seeds of the user's command side by side (one torch thread each, MINUTES
# each), each scored on val, then the two as an ensemble on val: SEEDS="0 1" lane_ensemble.sh OUT [MINUTES]
set -x
cd "$(dirname "$0")/../.."
export MEDSIGHT_SRC=${MEDSIGHT_SRC:-$PWD/src} PYTHONPATH=${MEDSIGHT_SRC:-$PWD/src} OMP_NUM_THREADS=1
OUT=${1:?output folder}; MINUTES=${2:-60}
date
for S in ${SEEDS:-0 1}; do
  SEED=$S bash benchmarks/race/run.sh hippocampus "$OUT/seed$S" "$MINUTES" > "$OUT.seed$S.log" 2>&1 &
done
wait
date
python -m medsight evaluate $(for S in ${SEEDS:-0 1}; do echo "$OUT/seed$S/run"; done) --split val --out "$OUT/ensemble" > "$OUT/ensemble.json"
date
echo LANE_ENSEMBLE_DONE
