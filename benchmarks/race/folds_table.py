"""The hippocampus folds of lane_folds.sh as one Markdown table, with the mean and SD of the folds' val Dice.

Usage: python benchmarks/race/folds_table.py OUT   (OUT/fold<k>/run and OUT/fold<k>/eval.json, k = 0..4)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def main(out: Path) -> None:
    print("| fold | race winner | final epochs | chosen epoch (smoothed val Dice, 20 cases) | val Dice (all val cases, mirror TTA) | HD95 |")
    print("| --- | --- | --- | --- | --- | --- |")
    dice = []
    for fold in range(5):
        run, evaluated = out / f"fold{fold}" / "run", out / f"fold{fold}" / "eval.json"
        if not evaluated.is_file():
            print(f"| {fold} | not run | | | | |")
            continue
        plan = json.loads((run / "plan.json").read_text(encoding="utf-8"))
        training = json.loads((run / "state.json").read_text(encoding="utf-8"))["training"]
        metrics = json.loads(evaluated.read_text(encoding="utf-8"))["metrics"]
        selection = training["selection"]
        dice.append(metrics["dice"])
        print(f"| {fold} | {plan['race']['winner']} | {training['epochs']} | {selection['chosen_epoch']} "
              f"({selection['smoothed_score']:.4f}) | {metrics['dice']:.4f} | {metrics['hd95']:.2f} |")
    if dice:
        print(f"\nmean of {len(dice)} folds: **{np.mean(dice):.4f} ± {np.std(dice, ddof=1) if len(dice) > 1 else 0:.4f}** (SD)")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
