#!/usr/bin/env bash
# A MINUTES budget per seed spent as K shorter runs evaluated as one ensemble, against one run of MINUTES:
#   ensemble_ab.sh OUT [DATASET] [MINUTES] [K] [SEEDS] [SPLIT]   defaults: breastmnist 10 3 "0 1 2" val
# Seed S trains members with seeds 10S, 10S+1, ... (train --minutes MINUTES/K each, the race included), then
# `medsight evaluate` scores the K members as an ensemble on SPLIT (val to choose; test once for the chosen arm).
set -x
export PYTHONPATH=${MEDSIGHT_SRC:-$PWD/src} OMP_NUM_THREADS=1
PY=${PYTHON:-python}
OUT=${1:?usage: ensemble_ab.sh OUT [DATASET] [MINUTES] [K] [SEEDS] [SPLIT]}
DATA=${DATA_ROOT:-/work/shared/data}/medmnist/${2:-breastmnist}.npz
MINUTES=${3:-10}; K=${4:-3}; SPLIT=${6:-val}
MEMBER_MINUTES=$($PY -c "print(round($MINUTES / $K, 4))")
mkdir -p $OUT
for S in ${5:-0 1 2}; do
  MEMBERS=""
  for k in $(seq 0 $((K - 1))); do
    M=$((10 * S + k)); RUN=$OUT/s${S}_m$k
    MEMBERS="$MEMBERS $RUN"
    [ -f $RUN/model.safetensors ] && continue   # a finished member is kept when the lane is started again
    date; uptime
    /usr/bin/time -v $PY -m medsight train $DATA --out $RUN --seed $M --minutes $MEMBER_MINUTES > $RUN.train.log 2>&1
  done
  $PY -m medsight evaluate $MEMBERS --split $SPLIT --out $OUT/s${S}_ensemble_$SPLIT > $OUT/s${S}_ensemble_$SPLIT.json 2>&1
done
date; uptime
