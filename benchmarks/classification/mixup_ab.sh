#!/usr/bin/env bash
# Validation A/B: the default plan against the same plan with mixup (alpha 0.4), train --minutes M, one run per seed.
#   mixup_ab.sh OUT [DATASET] [MINUTES] [ARMS] [SEEDS]     defaults: retinamnist 15 "base mixup" "0 1 2"
# DATASET names ../shared/data/medmnist/DATASET.npz; ARMS "base" or "mixup" alone runs one arm (one lane each).
set -x
export PYTHONPATH=${MEDSIGHT_SRC:-$PWD/src} OMP_NUM_THREADS=1
PY=${PYTHON:-python}
OUT=${1:?usage: mixup_ab.sh OUT [DATASET] [MINUTES] [ARMS] [SEEDS]}
DATA=${DATA_ROOT:-/work/shared/data}/medmnist/${2:-retinamnist}.npz
MINUTES=${3:-15}
mkdir -p $OUT
for S in ${5:-0 1 2}; do
  for ARM in ${4:-base mixup}; do
    RUN=$OUT/${ARM}_s$S
    date; uptime
    $PY -m medsight plan $DATA --out $RUN --seed $S
    if [ $ARM = mixup ]; then $PY -c "
import json,sys; p=json.load(open('$RUN/plan.json')); p['mixup']=0.4; json.dump(p,open('$RUN/plan.json','w'),indent=2)"; fi
    /usr/bin/time -v $PY -m medsight train $DATA --out $RUN --seed $S --minutes $MINUTES > $RUN.train.log 2>&1
    $PY -m medsight evaluate $RUN --split val > $RUN.val.log 2>&1
  done
done
date; uptime
