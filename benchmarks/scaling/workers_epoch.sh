#!/bin/sh
# One training epoch (dynunet_tiny, synthetic 32^3 volumes, augmentation on) with --workers $1.
# Set up once: /tmp/scale_bench2/shapes from medsight.synthetic.segmentation.make_segmentation_dataset(
#   spatial_dims=3, num_cases=8, seed=0, size=32), and /tmp/scale_bench2/plan.json from `medsight plan` with
#   iterations_per_epoch 4, validation_cases 1 and inference.tta false (patch 32^3, batch 8).
set -e
out=/tmp/scale_bench2/run_w$1
rm -rf "$out" && mkdir -p "$out" && cp /tmp/scale_bench2/plan.json "$out/plan.json"
exec python -m medsight train /tmp/scale_bench2/shapes --out "$out" --epochs 1 --workers "$1" --model dynunet_tiny
