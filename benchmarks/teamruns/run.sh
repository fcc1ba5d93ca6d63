#!/bin/bash
# The runs behind benchmarks/teamruns/README.md, one after another, on BreastMNIST (OMP_NUM_THREADS=1).
# Run folders go to $B (default /work/bench/teamruns); the small outputs are written here.
set -eu
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
DATA=${DATA:-../shared/data/medmnist/breastmnist.npz}
B=${B:-/work/bench/teamruns}
HERE=benchmarks/teamruns

# 1. a tracked run, read back from the MLflow file store and the TensorBoard events
python -m medsight train $DATA --out $B/tracked --epochs 2 --seed 0 --track mlflow:file://$B/mlruns --track tensorboard:$B/tensorboard
python -m medsight evaluate $B/tracked --split test > /dev/null
python -m medsight export $B/tracked
python $HERE/read_tracking.py $B/tracked > $HERE/tracking_readback.txt

# 2. the --balance runs at a 2-minute budget each, and at an equal 12 epochs each
for b in none weights sampler focal smote; do
  python -m medsight train $DATA --out $B/balance-$b --balance $b --minutes 2 --seed 0
  python -m medsight evaluate $B/balance-$b --split test > /dev/null
  python -m medsight train $DATA --out $B/e12-$b --balance $b --epochs 12 --seed 0
  python -m medsight evaluate $B/e12-$b --split test > /dev/null
done
python -m medsight compare $B/balance-{none,weights,sampler,focal,smote} --out $HERE/compare_balance.html > $HERE/compare_balance.txt
python -m medsight compare $B/e12-{none,weights,sampler,focal,smote} --out $HERE/compare_balance_e12.html > $HERE/compare_balance_e12.txt

# 3. a model card and a packed archive of one of them
python -m medsight export $B/balance-none
python -m medsight card $B/balance-none --out $HERE/MODEL_CARD_balance-none.md
python -m medsight pack $B/balance-none
