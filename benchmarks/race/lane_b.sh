#!/usr/bin/env bash
# Lane B: CHASE_DB1 race 60 min, then BCCD train --minutes 30
set -x
cd /work/main
export PYTHONPATH=${MEDSIGHT_SRC:-$PWD/src} OMP_NUM_THREADS=1
. /work/main/.venv/bin/activate
date; uptime; python benchmarks/segmentation/chase_db1.py /work/bench/s22/chase60 60 race; date; uptime
python -m medsight train /work/shared/data/bccd_voc --out /work/bench/s22/bccd30/run --seed 0 --minutes 30; date; uptime
python -m medsight evaluate /work/bench/s22/bccd30/run > /work/bench/s22/bccd30/eval.json; date; uptime
echo LANE_B_DONE
