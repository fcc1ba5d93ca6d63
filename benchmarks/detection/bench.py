"""Detection benchmarks: BCCD (Pascal VOC, real) and a synthetic LUNA16-like 3D set; train, evaluate, record.

    python benchmarks/detection/bench.py bccd --model retinanet --minutes 35 --out /tmp/bench/bccd_retinanet
    python benchmarks/detection/bench.py luna3d --model retinanet --minutes 20 --out /tmp/bench/luna3d

Each run appends one JSON record (command, cores, load, wall time, metrics) to benchmarks/detection/results.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BCCD = HERE.parents[2] / "shared" / "data" / "bccd_voc"


def luna_like(root: Path) -> Path:
    """Spheres of 3 to 30 voxels in diameter (log-uniform, more small ones) in noisy 80^3 volumes, fixed seed."""
    from medsight.synthetic.detection import make_spheres_3d

    if (root / "dataset.json").is_file():
        return root
    return make_spheres_3d(root, seed=2026, num_cases=40, size=80, radius=(1.5, 15.0), per_case=(1, 3),
                           contrast=(0.2, 0.45), noise=0.08, test_fraction=0.25)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset", choices=["bccd", "luna3d"])
    parser.add_argument("--model", default="retinanet")
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--out", required=True)
    parser.add_argument("--resume", action="store_true", help="continue OUT/run from its checkpoint")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads; on the shared, oversubscribed 2 cores one thread ran a 3D forward 10x faster than two")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)

    from medsight import api

    out = Path(args.out)
    data = BCCD if args.dataset == "bccd" else luna_like(out.parent / "luna3d_data")
    started = time.perf_counter()
    load_before = os.getloadavg()
    if args.resume:
        summary = api.train(None, out / "run", resume=True)
    else:
        summary = api.train(data, out / "run", model=args.model, minutes=args.minutes)
    trained = time.perf_counter() - started
    result = api.evaluate(out / "run", split="test")
    record = {
        "command": "python " + " ".join(sys.argv), "dataset": args.dataset, "model": args.model,
        "cores": os.cpu_count(), "torch_threads": __import__("torch").get_num_threads(),
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "train_seconds": round(trained, 1), "wall_seconds": round(time.perf_counter() - started, 1),
        "training": summary, "metrics": result["metrics"], "per_class": result["per_class"],
        "num_cases": result["num_cases"], "definitions": result["definitions"], "report": result["report"],
    }
    with open(HERE / "results.jsonl", "a") as handle:
        handle.write(json.dumps(record) + "\n")
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
