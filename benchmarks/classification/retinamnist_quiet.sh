#!/usr/bin/env bash
# RetinaMNIST, default command (train --minutes 15: the race, epoch by the default selection), seed $1
set -x
cd /work/main
export PYTHONPATH=/work/bench/s22/src OMP_NUM_THREADS=1
. /work/main/.venv/bin/activate
uptime
python benchmarks/classification/medmnist.py /work/shared/data/medmnist/retinamnist.npz --seeds $1 --minutes 15 --out /work/bench/s22/retina/retinamnist_s$1.json --runs /work/bench/s22/retina
uptime
