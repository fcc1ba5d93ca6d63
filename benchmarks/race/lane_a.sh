#!/usr/bin/env bash
# Lane A: hippocampus fold 0 race 60 min, then BreastMNIST 3 seeds x 10 min
set -x
cd /work/main
export MEDSIGHT_SRC=${MEDSIGHT_SRC:-$PWD/src} PYTHONPATH=${MEDSIGHT_SRC:-$PWD/src} OMP_NUM_THREADS=1
. /work/main/.venv/bin/activate
date; bash benchmarks/race/run.sh hippocampus /work/bench/s22/hippo60 60; date
bash benchmarks/race/run.sh breastmnist /work/bench/s22/breast10 10 0 1 2; date
echo LANE_A_DONE
