#!/bin/sh
# CHASE_DB1 as it is downloaded (one folder: Image_01L.jpg beside Image_01L_1stHO.png and Image_01L_2ndHO.png),
# given to medsight as it is: `check` pairs each photograph with its first observer's mask by name, `train`
# races and trains for MINUTES, `evaluate` scores the test split medsight carved (a fifth of the 28 images).
# Usage: benchmarks/data_layouts/chase_as_downloaded.sh OUT [MINUTES] [DATA]
set -eu
OUT=$1
MINUTES=${2:-20}
DATA=${3:-/work/shared/data/chase_db1}
mkdir -p "$OUT"
python -m medsight check "$DATA" > "$OUT/check.json"
python -m medsight train "$DATA" --out "$OUT/run" --minutes "$MINUTES" --seed 0
python -m medsight evaluate "$OUT/run" --split test
