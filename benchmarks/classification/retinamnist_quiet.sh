#!/usr/bin/env bash
# RetinaMNIST with the default command (train --minutes 15: the race, the epoch by the default selection).
#   benchmarks/classification/retinamnist_quiet.sh RUNS SEED     (one torch thread; one seed per free core)
set -euo pipefail
export PYTHONPATH=${MEDSIGHT_SRC:-$PWD/src} OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
runs=$1; seed=$2
uptime
python benchmarks/classification/medmnist.py "${DATA_ROOT:-/work/shared/data}/medmnist/retinamnist.npz" --seeds "$seed" \
  --minutes 15 --out "$runs/retinamnist_s$seed.json" --runs "$runs"
uptime
