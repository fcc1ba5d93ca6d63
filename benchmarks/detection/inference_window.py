"""3D detection predicted in windows larger than the training patch: speed and agreement with patch windows.

    # a trained run on medsight's synthetic LUNA16 set (chosen on its validation scans)
    python benchmarks/detection/luna16_synthetic.py --out OUT --epochs 10 --iterations 40 --split val
    python benchmarks/detection/inference_window.py --out OUT

One process, one torch thread. Each variant of the run's plan (``patch``: windows of the training patch, as plans
made before ``inference_window``; ``window``: the plan's ``inference_window``) scores the validation scans by
LUNA16's rule, then predicts one synthetic full-size chest CT (300 x 512 x 512 voxels at about 1.25 x 0.7 x
0.7 mm, int16, resampled slab by slab as ``medsight predict`` does; ``--full-scans N`` more of them, their
nodules pooled), window variant first, each timed once.

    python benchmarks/detection/inference_window.py --out OUT --skip-split --full-scans 4 --full-seed 12 --threads 2
The boxes of the two variants are compared: the share of one's best boxes that the other has (IoU >= 0.5) and
their score gaps. Appends a record to benchmarks/detection/inference_window.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

FULL_SHAPE = (300, 512, 512)
FULL_SPACING_XYZ = (0.7, 0.7, 1.25)


def agreement(a: dict, b: dict, top: int = 20) -> dict:
    """Of a's ``top`` best boxes, the share b has (same class, IoU >= 0.5), and the largest score gap of those."""
    import torch

    from medsight.models.detection.boxes import pairwise_iou

    a_boxes, b_boxes = torch.as_tensor(a["boxes"][:top], dtype=torch.float64), torch.as_tensor(b["boxes"], dtype=torch.float64)
    if len(a_boxes) == 0 or len(b_boxes) == 0:
        return {"top": int(len(a_boxes)), "matched": 0.0 if len(a_boxes) else 1.0, "max_score_gap": None}
    iou = pairwise_iou(a_boxes, b_boxes)
    iou[torch.as_tensor(a["labels"][:top])[:, None] != torch.as_tensor(b["labels"])[None]] = 0.0
    best, nearest = iou.max(1)
    hit = (best >= 0.5).numpy()
    gaps = np.abs(a["scores"][:top][hit] - b["scores"][nearest.numpy()[hit]])
    return {"top": int(len(a_boxes)), "matched": round(float(hit.mean()), 3),
            "mean_iou_matched": round(float(best.numpy()[hit].mean()), 4) if hit.any() else None,
            "max_score_gap": round(float(gaps.max()), 4) if len(gaps) else None}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True, help="the folder of luna16_synthetic.py (data/, run/)")
    parser.add_argument("--split", choices=("val", "test"), default="val")
    parser.add_argument("--skip-split", action="store_true", help="only the full-size scans")
    parser.add_argument("--full-scans", type=int, default=1, help="full-size scans to make and predict")
    parser.add_argument("--full-seed", type=int, default=11)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (both variants alike)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from medsight.api import load_run, read_dataset
    from medsight.synthetic.luna16 import make_luna16
    from medsight.tasks.detection.infer import detect_image
    from medsight.io.images import read_image
    from medsight.io.luna16 import read_luna16
    from medsight.tasks.detection.world import luna16_scores

    run_folder, task, model = load_run(args.out / "run", "cpu")
    plan = dict(task.plan)
    if "inference_window" not in plan:
        sys.exit(f"{args.out / 'run' / 'plan.json'} has no inference_window (a plan made before it)")
    variants = {"patch": {k: v for k, v in plan.items() if k != "inference_window"}, "window": plan}
    _, dataset = read_dataset(args.out / "data")
    indices = dataset.splits[args.split]
    record = {"command": "python benchmarks/detection/inference_window.py " + " ".join(sys.argv[1:]),
              "cores": os.cpu_count(), "torch_threads": args.threads, "load_average_before": os.getloadavg(),
              "patch_size": plan["patch_size"], "inference_window": plan["inference_window"],
              "window_overlap": plan.get("window_overlap"), "target_spacing": plan["target_spacing"]}
    task.cache_cases(dataset, [int(i) for i in indices])  # the cache is built once, before either is timed
    for name, variant in ({} if args.skip_split else variants).items():
        task.plan = variant
        started = time.perf_counter()
        result, _ = task.score_cases([model], dataset, indices)
        metrics = result["metrics"]
        record[f"{args.split}_{name}"] = {"seconds": round(time.perf_counter() - started, 1), "cpm": metrics.get("cpm"),
                                         "froc": metrics.get("froc"), "map_50": metrics.get("map_50"),
                                         "scans": int(len(indices))}
    big = args.out / ("full_size" if (args.full_seed, args.full_scans) == (11, 1) else f"full_size_s{args.full_seed}_n{args.full_scans}")
    if not (big / "annotations.csv").is_file():
        make_luna16(big, seed=args.full_seed, num_scans=args.full_scans, shape=FULL_SHAPE, spacing_xyz=FULL_SPACING_XYZ,
                    subsets=1, tubes=12, empty_every=0)
    full = read_luna16(big)
    found = {name: [] for name in variants}
    seconds = {name: 0.0 for name in variants}
    windows = {name: {"count": 0, "shape": None} for name in variants}
    for index in range(len(full.case_ids)):
        scan = read_image(full.sources[index][0])
        raw, spacing = np.asarray(scan.array), tuple(reversed(scan.spacing))
        for name in ("window", "patch"):
            calls = []
            hook = model.register_forward_pre_hook(lambda module, inputs: calls.append(tuple(inputs[0].shape[2:])))
            started = time.perf_counter()
            found[name].append(detect_image([model], raw, variants[name], torch.device("cpu"), spacing))
            seconds[name] += time.perf_counter() - started
            hook.remove()
            windows[name] = {"count": windows[name]["count"] + len(calls), "shape": list(calls[0]) if calls else None}
            print(index, name, round(seconds[name], 1), "s,", windows[name], flush=True)
    record["full_size_scans"] = {"scans": len(full.case_ids), "seed": args.full_seed, "shape": list(raw.shape[1:]),
                                 "spacing_zyx_mm": [round(s, 3) for s in spacing],
                                 "seconds": {k: round(v, 1) for k, v in seconds.items()}, "windows": windows,
                                 "speedup": round(seconds["patch"] / seconds["window"], 2),
                                 # their nodules by LUNA16's rule, pooled over the scans
                                 "luna16": {name: luna16_scores(full, range(len(f)), f) for name, f in found.items()},
                                 "window_has_patch_top20": [agreement(a, b) for a, b in zip(found["patch"], found["window"])],
                                 "patch_has_window_top20": [agreement(b, a) for a, b in zip(found["patch"], found["window"])]}
    record["load_average_after"] = os.getloadavg()
    record["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(record, indent=1))
    with open(Path(__file__).with_name("inference_window.jsonl"), "a") as handle:
        handle.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
