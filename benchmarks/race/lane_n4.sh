#!/usr/bin/env bash
# Hippocampus fold 0 with the plan's N4 bias-field step switched on, then the user's command:
#   lane_n4.sh OUT [MINUTES] [SEED]    (plan; n4_bias_field enabled; train --fold 0 --minutes M; evaluate --split val)
# N4 runs once per data set when train builds the preprocessing cache, before the budget's clock starts.
set -x
cd "$(dirname "$0")/../.."
export PYTHONPATH=${MEDSIGHT_SRC:-$PWD/src} OMP_NUM_THREADS=1 ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=1
DATA=${DATA_ROOT:-/work/shared/data}/msd_task04_hippocampus
OUT=${1:?output folder}; MINUTES=${2:-60}; SEED=${3:-0}
mkdir -p "$OUT"; date; uptime
python -m medsight plan "$DATA" --out "$OUT/run" --seed "$SEED"
python -c "
import json; p = json.load(open('$OUT/run/plan.json'))
for step in p['preprocessing']['steps']:
    if step['name'] == 'n4_bias_field': step['enabled'] = True
json.dump(p, open('$OUT/run/plan.json', 'w'), indent=2)"
/usr/bin/time -v python -m medsight train "$DATA" --out "$OUT/run" --fold 0 --seed "$SEED" --minutes "$MINUTES" > "$OUT/train.log" 2>&1
date; uptime
python -m medsight evaluate "$OUT/run" --split val > "$OUT/eval.json"
date; uptime
echo LANE_N4_DONE
