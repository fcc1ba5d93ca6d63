"""3D detection in mm on medsight's synthetic LUNA16 layout: a fixed number of steps, then LUNA16's FROC on test.

    # the default set: 24 scans of 40 x 96 x 96 voxels, nodules of 3-30 mm among vessels (seed 1)
    python benchmarks/detection/luna16_synthetic.py --out /work/bench/luna16_default --epochs 4 --iterations 20
    # the small set of tests/detection/test_luna16_learning.py: 12 scans of 24 x 32 x 32, nodules of 12-18 mm
    python benchmarks/detection/luna16_synthetic.py --out /work/bench/luna16_large --set large --epochs 10 --iterations 15

    # two settings compared on validation, then the chosen one scored on test (its weights reused)
    python benchmarks/detection/luna16_synthetic.py --out OUT --epochs 50 --iterations 40 --split val [--positive-size-power 0]
    python benchmarks/detection/luna16_synthetic.py --out OUT --epochs 50 --iterations 40 --split test   # the chosen OUT

Each run appends a JSON record (command, cores, load average, wall times, FROC points, CPM) to
benchmarks/detection/luna16_synthetic.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

SETS = {
    "default": {"seed": 1, "num_scans": 24},
    "large": {"seed": 3, "num_scans": 12, "shape": (24, 32, 32), "spacing_xyz": (2.0, 2.0, 2.0),
              "diameters_mm": (12.0, 18.0), "tubes": 2, "empty_every": 0},
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--set", choices=sorted(SETS), default="default")
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--iterations", type=int, required=True, help="training steps per epoch (batch of the plan)")
    parser.add_argument("--positive-size-power", type=float, default=None,
                        help="sets plan.json's positive_size_power (the plan writes 1.0 for lesions of widely spread sizes; 0 draws every box alike)")
    parser.add_argument("--split", choices=("val", "test"), default="test",
                        help="the split scored: val to choose between settings, test once for the chosen one")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from medsight import api
    from medsight.synthetic.luna16 import make_luna16

    data = args.out / "data"
    if not (data / "annotations.csv").is_file():
        make_luna16(data, **SETS[args.set])
    run = args.out / "run"
    started, load_before = time.time(), os.getloadavg()
    if (run / "model.safetensors").is_file():  # trained before: score the split, keep the training
        plan, trained = json.loads((run / "plan.json").read_text(encoding="utf-8")), None
    else:
        plan = train(api, data, run, args)
        trained = time.time() - started
    result = api.evaluate(run, split=args.split)
    m = result["metrics"]
    record = {"command": "python " + " ".join(sys.argv), "set": args.set, "cores": os.cpu_count(), "torch_threads": 1,
              "load_average_before": load_before, "load_average_after": os.getloadavg(), "seed": args.seed,
              "positive_size_power": plan.get("positive_size_power"),
              "steps": args.epochs * args.iterations, "batch": plan["batch_size"], "patch_size": plan["patch_size"],
              "target_spacing": plan["target_spacing"], "anchor_shapes_mm": plan["anchor_shapes_mm"],
              "train_seconds": None if trained is None else round(trained, 1), "wall_seconds": round(time.time() - started, 1),
              "split": args.split, f"{args.split}_scans": result["num_cases"], f"{args.split}_nodules": result["num_boxes"],
              "cpm": m["cpm"], "froc": m["froc"], "map_50": m["map_50"]}
    print(json.dumps(record, indent=1))
    with open(Path(__file__).with_name("luna16_synthetic.jsonl"), "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


def train(api, data: Path, run: Path, args) -> dict:
    plan = api.plan(data, run)
    plan["iterations_per_epoch"] = args.iterations
    if args.positive_size_power is not None:
        plan["positive_size_power"] = args.positive_size_power
    (run / "plan.json").write_text(json.dumps(plan, indent=1), encoding="utf-8")
    api.train(data, run, epochs=args.epochs, seed=args.seed)
    return plan


if __name__ == "__main__":
    main()
