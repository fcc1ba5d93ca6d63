"""CHASE_DB1 retinal vessels: first 20 images train (5-fold split inside them, fold 0), last 8 test, observer 1.

Writes the images as an nnU-Net raw folder (R, G, B as channels _0000.._0002, masks 0/1), trains for the given
minutes, evaluates the 8 test images (Dice = F1 on pixels) and computes pixel ROC-AUC over the whole image from
the predicted vessel probability. Usage: python benchmarks/segmentation/chase_db1.py WORK MINUTES [MODEL]
[--clahe] [--split val|test] [--seed S] [--with WORK2 ...] (MODEL "race": no model given, so `--minutes` races the task's candidates as
`medsight train --minutes` does; `--clahe` switches the plan's clahe step on; `--split val` scores the 4
validation images only, to choose between settings, and a later `--split test` on the same WORK scores the test
images with the weights already trained; `--with` scores WORK's run and the runs of the other WORK folders as one
ensemble, their probabilities averaged, as `medsight evaluate RUN RUN` does, into WORK/ensemble).
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


def pixel_auc(runs: list[Path], data: Path) -> float:
    """ROC-AUC of the vessel probability (averaged over the runs) over every pixel of the 8 test images."""
    from sklearn.metrics import roc_auc_score

    from medsight.api import load_run, read_dataset
    from medsight.tasks.segmentation.infer import predict_label

    loaded = [load_run(run) for run in runs]
    run_folder, task, _ = loaded[0]
    models = [model for _, _, model in loaded]
    _, dataset = read_dataset(data)
    scores, truth = [], []
    for index in dataset.splits["test"]:
        case = dataset.load_case(int(index))
        _, probs = predict_label(models, case.image, case.spacing, task.plan, run_folder.load_state())
        scores.append((1 - probs[0]).numpy().ravel())
        truth.append(case.label.ravel())
    return float(roc_auc_score(np.concatenate(truth), np.concatenate(scores)))


def main(work: Path, minutes: float, model: str, clahe: bool = False, split: str = "test", seed: int = 0,
         others: tuple[Path, ...] = ()) -> None:
    from medsight import api

    data = make_raw(work / "chase_raw")
    run = work / "run"
    train_seconds = None
    if not (run / "model.safetensors").is_file():
        plan = api.plan(data, run)
        plan["iterations_per_epoch"] = 100  # validation costs 4 full images: amortise it over more steps
        plan["inference"]["overlap"] = 0.25  # 999x960 images: fewer windows keep TTA affordable on 2 cores
        for step in plan["preprocessing"]["steps"]:
            if step["name"] == "clahe":
                step["enabled"] = clahe
        (run / "plan.json").write_text(json.dumps(plan, indent=2), encoding="utf-8")
        started = time.time()
        api.train(data, run, minutes=minutes, model=None if model == "race" else model, race=model == "race",
                  seed=seed)
        train_seconds = round(time.time() - started)
    started = time.time()
    runs = [run, *(other / "run" for other in others)]
    if others:
        result = api.evaluate_ensemble(runs, data, split=split, out=work / "ensemble")
    else:
        result = api.evaluate(run, split=split)
    auc = pixel_auc(runs, data) if split == "test" else None
    summary = {"command": "python benchmarks/segmentation/chase_db1.py " + " ".join(sys.argv[1:]), "clahe": clahe,
               "split": split, "runs": [str(r) for r in runs], "train_wall_seconds": train_seconds, "evaluate_wall_seconds": round(time.time() - started),
               "dice": result["metrics"]["dice"], "pixel_auc": auc, "metrics": result["metrics"],
               "definitions": result.get("definitions")}
    name = ("summary" if split == "test" else f"summary_{split}") + ("_ensemble" if others else "")
    (work / f"{name}.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("minutes", type=float)
    parser.add_argument("model", nargs="?", default="dynunet_lite")
    parser.add_argument("--clahe", action="store_true", help="switch the plan's clahe step on")
    parser.add_argument("--split", choices=("val", "test"), default="test")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--with", dest="others", type=Path, nargs="+", default=(),
                        help="other WORK folders whose runs join WORK's as an ensemble")
    args = parser.parse_args()
    main(args.work, args.minutes, args.model, args.clahe, args.split, args.seed, tuple(args.others))
