"""Hippocampus fold 0 at one training budget, one arm at a time: which model, N4 or not, pre-trained or not.

Every arm plans MSD Task04 Hippocampus afresh, trains fold 0 of nnU-Net's splits_final.json (208 train / 52 val)
for the same number of CPU minutes and validates all 52 validation cases after every 50 iterations (as
hippocampus.sh does), so each arm's log.csv is a Dice-against-minutes curve. Arms:

  scratch        the default plan and model (dynunet_lite)
  dynunet_tiny   the default plan, model dynunet_tiny (half the filters)
  unet           the default plan, MONAI's plain UNet
  n4             the default plan with the n4_bias_field step switched on (its cost is in the preprocessing cache,
                 timed separately: it is paid once per data set, not per training minute)
  pretrain       masked-reconstruction pre-training on the 208 training images for --pretrain-share of the
                 budget, then the rest of the budget training with --init from it (every tensor at full lr)

Writes WORK/<arm>.json with the figures and the command. Usage:
python benchmarks/segmentation/hippocampus_arms.py WORK MINUTES --arms scratch,pretrain [--pretrain-share 0.25]
python benchmarks/segmentation/hippocampus_arms.py WORK 0 --report
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

DATA = Path("/work/shared/data/msd_task04_hippocampus")
MODELS = {"scratch": "dynunet_lite", "dynunet_tiny": "dynunet_tiny", "unet": "unet", "n4": "dynunet_lite",
          "pretrain": "dynunet_lite"}


def write_plan(run: Path, n4: bool, iterations: int = 50) -> dict:
    from medsight import api

    plan = api.plan(DATA, run)
    plan["validation_cases"] = 52
    plan["iterations_per_epoch"] = iterations
    for step in plan["preprocessing"]["steps"]:
        if step["name"] == "n4_bias_field":
            step["enabled"] = n4
    (run / "plan.json").write_text(json.dumps(plan, indent=2), encoding="utf-8")
    return plan


def curve(run: Path, offset_minutes: float = 0.0) -> list[dict]:
    """(cumulative training minutes, Dice) per validated epoch of RUN/log.csv."""
    import numpy as np

    from medsight.report.plots import read_log

    log = read_log(run / "log.csv")
    minutes = offset_minutes + np.cumsum(log["seconds"]) / 60
    return [{"epoch": int(log["epoch"][i]), "minutes": round(float(minutes[i]), 2), "dice": float(log["dice"][i]),
             "anterior": float(log["dice_Anterior"][i]), "posterior": float(log["dice_Posterior"][i])}
            for i in np.flatnonzero(~np.isnan(log["dice"]))]


def timed(call):
    wall, cpu = time.time(), time.process_time()
    result = call()
    return result, time.time() - wall, time.process_time() - cpu


def run_arm(work: Path, arm: str, minutes: float, share: float, iterations: int = 50) -> dict:
    from medsight import api

    run = work / arm
    out: dict = {"arm": arm, "model": MODELS[arm], "budget_minutes": minutes}
    started = time.time()
    write_plan(run, n4=arm == "n4", iterations=iterations)
    # the plan only: N4 and the rest of the preprocessing run when train builds the cache (in train_wall_seconds)
    out["plan_and_preprocess_seconds"] = round(time.time() - started)
    offset, init, pretrain_cpu = 0.0, None, 0.0
    if arm == "pretrain":
        pre = work / "pretrain_encoder"
        write_plan(pre, n4=False, iterations=iterations)
        summary, wall, cpu = timed(lambda: api.pretrain(DATA, pre, minutes=minutes * share))
        out["pretrain"] = {"minutes": minutes * share, "wall_seconds": round(wall), "cpu_seconds": round(cpu),
                           "epochs": summary.get("epochs")}
        offset, init, pretrain_cpu = wall / 60, pre, cpu
        # the same total minutes as the other arms: pre-training's time comes off the training budget (wall time,
        # as --minutes counts it; each arm's CPU minutes are recorded beside it)
        minutes = minutes - wall / 60
        if minutes <= 0:
            raise SystemExit(f"pre-training took {wall / 60:.1f} minutes, the whole budget")
    summary, wall, cpu = timed(lambda: api.train(DATA, run, minutes=minutes, fold=0, model=MODELS[arm], init=init,
                                                 init_lr_scale=1.0))
    points = curve(run, offset)
    best = max(points, key=lambda p: p["dice"])
    out.update({"train_wall_seconds": round(wall), "train_cpu_seconds": round(cpu), "epochs": summary.get("epochs"),
                "best_epoch": best["epoch"], "val_dice": best["dice"], "val_anterior": best["anterior"],
                "val_posterior": best["posterior"], "total_cpu_minutes": round((pretrain_cpu + cpu) / 60, 2),
                "curve": points})
    return out


def report(work: Path) -> str:
    """A markdown table of the arms found in WORK (--report)."""
    lines = ["| arm | model | epochs | best epoch | val Dice (mean) | anterior | posterior | training CPU min | wall s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for arm in MODELS:
        path = work / f"{arm}.json"
        if path.is_file():
            r = json.loads(path.read_text(encoding="utf-8"))
            wall = r["train_wall_seconds"] + r.get("pretrain", {}).get("wall_seconds", 0)
            lines.append(f"| {arm} | {r['model']} | {r['epochs']} | {r['best_epoch']} | {r['val_dice']:.3f} | "
                         f"{r['val_anterior']:.3f} | {r['val_posterior']:.3f} | {r['total_cpu_minutes']:.1f} | {wall} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("minutes", type=float)
    parser.add_argument("--arms", default="scratch")
    parser.add_argument("--pretrain-share", type=float, default=0.25)
    parser.add_argument("--iterations", type=int, default=50, help="iterations between validations")
    parser.add_argument("--report", action="store_true", help="print the table of the arms already in WORK")
    args = parser.parse_args()
    if args.report:
        print(report(args.work))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    command = "OMP_NUM_THREADS=1 python " + " ".join(sys.argv)
    for arm in args.arms.split(","):
        if arm not in MODELS:
            raise SystemExit(f"unknown arm {arm!r}; arms: {', '.join(MODELS)}")
        result = {"command": command, **run_arm(args.work, arm, args.minutes, args.pretrain_share, args.iterations)}
        (args.work / f"{arm}.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
        print(json.dumps({k: v for k, v in result.items() if k != "curve"}, indent=2), flush=True)


if __name__ == "__main__":
    main()
