#!/usr/bin/env bash
# RetinaMNIST, validation A/B: the default plan against the same plan with mixup (alpha 0.4), --minutes 15, seeds 0-2.
set -x
export PYTHONPATH=${MEDSIGHT_SRC:-$PWD/src} OMP_NUM_THREADS=1
PY=${PYTHON:-python}
DATA=${DATA_ROOT:-/work/shared/data}/medmnist/retinamnist.npz
OUT=${1:?usage: retinamnist_mixup_ab.sh OUT}
mkdir -p $OUT
for S in 0 1 2; do
  for ARM in base mixup; do
    RUN=$OUT/${ARM}_s$S
    date; uptime
    $PY -m medsight plan $DATA --out $RUN --seed $S
    if [ $ARM = mixup ]; then $PY -c "
import json,sys; p=json.load(open('$RUN/plan.json')); p['mixup']=0.4; json.dump(p,open('$RUN/plan.json','w'),indent=2)"; fi
    /usr/bin/time -v $PY -m medsight train $DATA --out $RUN --seed $S --minutes 15 > $RUN.train.log 2>&1
    $PY -m medsight evaluate $RUN --split val > $RUN.val.log 2>&1
  done
done
date; uptime
