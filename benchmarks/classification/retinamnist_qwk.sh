#!/usr/bin/env bash
# RetinaMNIST with the epoch kept by validation quadratic kappa and the grade cuts tuned on validation.
#   OMP_NUM_THREADS=1 benchmarks/classification/retinamnist_qwk.sh RUNS SEED...
# Each seed: `medsight plan`, "selection_metric": "qwk" written into that run's plan.json (the only change
# from the default plan), then benchmarks/classification/medmnist.py trains 15 wall minutes and evaluates.
set -euo pipefail
runs=$1; shift
data=/work/shared/data/medmnist/retinamnist.npz
for seed in "$@"; do
  run=$runs/retinamnist_default_none_s$seed
  if [ ! -f "$run/plan.json" ]; then
    python -m medsight plan "$data" --out "$run" --seed "$seed"
    python - "$run/plan.json" <<'PY'
import json, sys
plan = json.load(open(sys.argv[1], encoding="utf-8"))
plan["selection_metric"] = "qwk"
json.dump(plan, open(sys.argv[1], "w", encoding="utf-8"), indent=2)
PY
  fi
  python benchmarks/classification/medmnist.py "$data" --seeds "$seed" --minutes 15 \
    --extra "--operating-point qwk" --out benchmarks/classification/results/retinamnist_qwk.json --runs "$runs"
done
