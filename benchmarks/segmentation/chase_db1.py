"""CHASE_DB1 retinal vessels: first 20 images train (5-fold split inside them, fold 0), last 8 test, observer 1.

Writes the images as an nnU-Net raw folder (R, G, B as channels _0000.._0002, masks 0/1), trains for the given
minutes, evaluates the 8 test images (Dice = F1 on pixels) and computes pixel ROC-AUC over the whole image from
the predicted vessel probability. Usage: python benchmarks/segmentation/chase_db1.py WORK MINUTES [MODEL]
(MODEL "race": no model given, so `--minutes` races the task's candidates as `medsight train --minutes` does).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

SOURCE = Path("/work/shared/data/chase_db1")


def make_raw(out: Path) -> Path:
    from PIL import Image

    names = sorted(p.stem for p in SOURCE.glob("Image_*.jpg"))
    for k, name in enumerate(names):
        part = "Tr" if k < 20 else "Ts"
        rgb = np.asarray(Image.open(SOURCE / f"{name}.jpg").convert("RGB"))
        mask = (np.asarray(Image.open(SOURCE / f"{name}_1stHO.png").convert("L")) > 0).astype(np.uint8)
        (out / f"images{part}").mkdir(parents=True, exist_ok=True)
        (out / f"labels{part}").mkdir(parents=True, exist_ok=True)
        for c in range(3):
            Image.fromarray(rgb[..., c]).save(out / f"images{part}" / f"{name}_{c:04d}.png")
        Image.fromarray(mask).save(out / f"labels{part}" / f"{name}.png")
    meta = {"channel_names": {"0": "R", "1": "G", "2": "B"}, "labels": {"background": 0, "vessel": 1},
            "numTraining": 20, "file_ending": ".png", "name": "CHASE_DB1 (observer 1)"}
    (out / "dataset.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return out


def pixel_auc(run: Path, data: Path) -> float:
    """ROC-AUC of the vessel probability over every pixel of the 8 test images."""
    from sklearn.metrics import roc_auc_score

    from medsight.api import load_run, read_dataset
    from medsight.tasks.segmentation.infer import predict_label

    run_folder, task, model = load_run(run)
    _, dataset = read_dataset(data)
    scores, truth = [], []
    for index in dataset.splits["test"]:
        case = dataset.load_case(int(index))
        _, probs = predict_label([model], case.image, case.spacing, task.plan, run_folder.load_state())
        scores.append((1 - probs[0]).numpy().ravel())
        truth.append(case.label.ravel())
    return float(roc_auc_score(np.concatenate(truth), np.concatenate(scores)))


def main(work: Path, minutes: float, model: str) -> None:
    from medsight import api

    data = make_raw(work / "chase_raw")
    run = work / "run"
    plan = api.plan(data, run)
    plan["iterations_per_epoch"] = 100  # validation costs 4 full images: amortise it over more steps
    plan["inference"]["overlap"] = 0.25  # 999x960 images: fewer windows keep TTA affordable on 2 cores
    (run / "plan.json").write_text(json.dumps(plan, indent=2), encoding="utf-8")
    started = time.time()
    api.train(data, run, minutes=minutes, model=None if model == "race" else model, race=model == "race")
    train_seconds = time.time() - started
    started = time.time()
    result = api.evaluate(run, split="test")
    auc = pixel_auc(run, data)
    summary = {"train_wall_seconds": round(train_seconds), "evaluate_wall_seconds": round(time.time() - started),
               "dice": result["metrics"]["dice"], "pixel_auc": auc, "metrics": result["metrics"],
               "definitions": result.get("definitions")}
    (work / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main(Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "dynunet_lite")
