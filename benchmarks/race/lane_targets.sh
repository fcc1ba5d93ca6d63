#!/usr/bin/env bash
# One torch thread: BCCD train --minutes 30 + evaluate, CHASE_DB1 race 60 min, then hippocampus fold 0 at 30 min
# (the fifth of the 30-minute folds). Usage: benchmarks/race/lane_targets.sh OUT
set -x
cd "$(dirname "$0")/../.."
export MEDSIGHT_SRC=${MEDSIGHT_SRC:-$PWD/src}
export PYTHONPATH=$MEDSIGHT_SRC OMP_NUM_THREADS=1
OUT=${1:?output folder}; DATA_ROOT=${DATA_ROOT:-/work/shared/data}
mkdir -p "$OUT/bccd30"
date; uptime; python -m medsight train "$DATA_ROOT/bccd_voc" --out "$OUT/bccd30/run" --seed 0 --minutes 30
date; uptime; python -m medsight evaluate "$OUT/bccd30/run" > "$OUT/bccd30/eval.json"
date; uptime; python benchmarks/segmentation/chase_db1.py "$OUT/chase60" 60 race
date; uptime; FOLDS=0 bash benchmarks/race/lane_folds.sh "$OUT/hippo30"
date; echo LANE_TARGETS_DONE
