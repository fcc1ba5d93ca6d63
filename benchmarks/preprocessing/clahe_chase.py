"""Does CLAHE help CHASE_DB1 vessel segmentation? The plan's steps with clahe off and on, same seed and budget.

First a proxy that needs no training: the pixel ROC-AUC of the (inverted) green channel as a vessel score inside
the field of view, raw and after the plan's clahe step, on the 20 training images. Then, with MINUTES > 0, one
run per arm (benchmarks/segmentation/chase_db1.py's layout and settings: first 20 images train, last 8 test,
observer 1), each evaluated for Dice and pixel AUC on the 8 test images. Writes WORK/clahe_summary.json.

Usage: python benchmarks/preprocessing/clahe_chase.py WORK MINUTES [--model NAME] [--arms off,on] [--iterations N]
(MINUTES 0: the proxy only).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path

import numpy as np

CHASE_SCRIPT = Path(__file__).resolve().parents[1] / "segmentation" / "chase_db1.py"


def chase_module():
    """benchmarks/segmentation/chase_db1.py (its raw layout and pixel AUC), imported from its file."""
    spec = importlib.util.spec_from_file_location("chase_db1", CHASE_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def green_channel_auc(data: Path, clahe_options: dict) -> dict[str, float]:
    """Vessel-vs-background AUC of the inverted green channel inside the field of view, raw and after CLAHE."""
    from sklearn.metrics import roc_auc_score

    from medsight.api import read_dataset
    from medsight.data.steps import clahe

    _, dataset = read_dataset(data)
    rng = np.random.default_rng(0)
    raw_scores, clahe_scores, truth = [], [], []
    training = [int(i) for split in ("train", "val") for i in dataset.splits.get(split, [])]
    for index in training:
        case = dataset.load_case(index)
        equalised = clahe(case.image, case.spacing, **clahe_options)
        inside = case.image.max(0) > 20  # the field of view: the camera's black surround is not tissue
        keep = rng.choice(np.flatnonzero(inside.ravel()), 20000, replace=False)
        raw_scores.append(-case.image[1].ravel()[keep])
        clahe_scores.append(-equalised[1].ravel()[keep])
        truth.append(case.label.ravel()[keep])
    truth = np.concatenate(truth)
    return {"raw": float(roc_auc_score(truth, np.concatenate(raw_scores))),
            "clahe": float(roc_auc_score(truth, np.concatenate(clahe_scores))), "images": len(raw_scores)}


def train_arm(data: Path, run: Path, clahe_on: bool, minutes: float, model: str, iterations: int) -> dict:
    """Plan, switch clahe, train for the budget, evaluate the test split; the arm's figures."""
    from medsight import api

    plan = api.plan(data, run)
    for step in plan["preprocessing"]["steps"]:
        if step["name"] == "clahe":
            step["enabled"] = clahe_on
    plan["iterations_per_epoch"] = iterations  # as chase_db1.py: amortise validation over more steps
    plan["inference"]["overlap"] = 0.25
    (run / "plan.json").write_text(json.dumps(plan, indent=2), encoding="utf-8")
    started = time.time()
    summary = api.train(data, run, minutes=minutes, model=model)
    train_seconds = time.time() - started
    result = api.evaluate(run, split="test")
    return {"clahe": clahe_on, "epochs": summary.get("epochs"), "train_wall_seconds": round(train_seconds),
            "dice": result["metrics"]["dice"], "pixel_auc": chase_module().pixel_auc(run, data),
            "steps": [s["name"] for s in plan["preprocessing"]["steps"] if s["enabled"]]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("minutes", type=float)
    parser.add_argument("--model", default="dynunet_lite")
    parser.add_argument("--arms", default="off,on")
    parser.add_argument("--iterations", type=int, default=100)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    data = chase_module().make_raw(args.work / "chase_raw")
    from medsight.data.steps import DEFAULT_OPTIONS

    summary = {"command": f"python benchmarks/preprocessing/clahe_chase.py {args.work} {args.minutes:g} "
                          f"--model {args.model} --arms {args.arms} --iterations {args.iterations}",
               "clahe_options": DEFAULT_OPTIONS["clahe"],
               "green_channel_auc": green_channel_auc(data, DEFAULT_OPTIONS["clahe"])}
    print(json.dumps(summary, indent=2), flush=True)
    if args.minutes > 0:
        summary["arms"] = [train_arm(data, args.work / f"run_clahe_{arm}", arm == "on", args.minutes, args.model,
                                     args.iterations) for arm in args.arms.split(",")]
    (args.work / "clahe_summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
