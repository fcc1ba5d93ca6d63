"""Full-resolution fundus lesion detection: the 240 IDRiD photographs with CODRAS boxes, tiled by the plan.

    OMP_NUM_THREADS=1 nice python benchmarks/detection/fundus_idrid.py /work/shared/data/idrid_fundus_codras \
        /work/bench/fundus2/det --minutes 25 --out benchmarks/detection/fundus_idrid.json

The photographs are linked (never copied) into WORK/data, so that medsight's seeded split (seed 12345,
medsight.data.splits) is written beside the links, not into the shared data folder. Then `medsight plan`,
`medsight train --minutes M`, `medsight evaluate --split test`, all as a user types them. The test
predictions (full-image coordinates) are scored again per group: the optic disc alone, and the two lesion
classes (hard exudates, haemorrhages) without the optic disc, so that the easy class does not lift the
lesions' figures: AP@0.5 per class, mAP@0.5 of the group, FROC (LUNA16 rule: a predicted centre inside the
reference's radius; and IoU >= 0.1) with false positives counted per image over the group's classes.

The detector also gives an image-level lesion label: an image's score is its best exudate or haemorrhage
box (0 without one), the label "any exudate or haemorrhage box" (160 / 80). The threshold is chosen on the
validation split (`medsight evaluate --split val`, balanced accuracy); test AUC with a bootstrap interval,
sensitivity and specificity at that threshold with Wilson intervals. A rerun on a trained run skips plan,
training and any evaluation already written.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

GROUPS = {"optic_disc": ["optic_disc"], "lesions": ["hard_exudates", "haemorrhage"]}


def link_folder(codras: Path, data: Path) -> Path:
    """WORK/data/images/* and retinal.names as symbolic links to the shared photographs and labels."""
    (data / "images").mkdir(parents=True, exist_ok=True)
    names = data / "retinal.names"
    if not names.exists():
        names.symlink_to((codras / "retinal.names").resolve())
    for source in sorted((codras / "images").iterdir()):
        link = data / "images" / source.name
        if not link.exists():
            link.symlink_to(source.resolve())
    return data


def timed(cmd: list[str], log: Path) -> dict[str, float]:
    """Run a command (output to log); its wall and CPU seconds and the load average before and after."""
    import resource

    before, load = resource.getrusage(resource.RUSAGE_CHILDREN), os.getloadavg()
    started = time.perf_counter()
    with open(log, "a", encoding="utf-8") as handle:
        handle.write("$ " + shlex.join(cmd) + "\n")
        handle.flush()
        subprocess.run(cmd, stdout=handle, stderr=subprocess.STDOUT, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"wall_seconds": round(time.perf_counter() - started, 1),
            "cpu_seconds": round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 1),
            "load_before": [round(v, 2) for v in load], "load_after": [round(v, 2) for v in os.getloadavg()]}


def grouped_scores(data: Path, eval_dir: Path, test_ids: list[str]) -> dict[str, dict]:
    """AP@0.5 per class, mAP@0.5 and FROC of each group, from the test predictions and the YOLO labels."""
    from medsight.io.yolo import read_yolo
    from medsight.metrics.detection import DetectionMetric

    dataset = read_yolo(data)
    dataset_test = [i for i, case in enumerate(dataset.case_ids) if case in set(test_ids)]
    records = json.loads((eval_dir / "predictions" / "results.json").read_text(encoding="utf-8"))
    by_image: dict[str, list] = {}
    for r in records:
        by_image.setdefault(r["image_id"], []).append(r)
    out = {}
    for group, names in GROUPS.items():
        ids = [dataset.classes.index(n) for n in names]
        metric = DetectionMetric(len(ids), names)
        for index in dataset_test:
            preds = [r for r in by_image.get(dataset.case_ids[index], []) if r["category_id"] - 1 in ids]
            # COCO [x, y, w, h] back to array-order corners (row0, col0, row1, col1)
            boxes = np.array([[y, x, y + h, x + w] for x, y, w, h in (r["bbox"] for r in preds)]).reshape(-1, 4)
            keep = np.isin(dataset.labels[index], ids)
            metric.update(boxes, [r["score"] for r in preds], [ids.index(r["category_id"] - 1) for r in preds],
                          dataset.boxes[index][keep], [ids.index(int(v)) for v in dataset.labels[index][keep]])
        result = metric.compute()
        m = result["metrics"]
        out[group] = {"map_50": m["map_50"], "map_50_95": m["map_50_95"],
                      "ap_50": {n: result["per_class"][n]["ap_50"] for n in names},
                      "boxes": {n: result["per_class"][n]["num_boxes"] for n in names},
                      "froc": m["froc"], "cpm": m["cpm"], "froc_iou": m["froc_iou"], "cpm_iou": m["cpm_iou"]}
    return out


def image_scores(data: Path, eval_dir: Path, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(truth, score) per image: any lesion box; the best lesion box score found (0 without one)."""
    from medsight.io.yolo import read_yolo

    dataset = read_yolo(data)
    lesion = [dataset.classes.index(n) + 1 for n in GROUPS["lesions"]]  # category_id is 1-based
    best: dict[str, float] = {}
    for r in json.loads((eval_dir / "predictions" / "results.json").read_text(encoding="utf-8")):
        if r["category_id"] in lesion:
            best[r["image_id"]] = max(best.get(r["image_id"], 0.0), float(r["score"]))
    row = {case: i for i, case in enumerate(dataset.case_ids)}
    truth = np.array([int(np.isin(dataset.labels[row[c]], np.array(lesion) - 1).any()) for c in ids])
    return truth, np.array([best.get(c, 0.0) for c in ids])


def image_level(data: Path, run: Path, splits: dict[str, list[str]]) -> dict:
    """Lesion presence from the detector: threshold on validation, test AUC, sensitivity, specificity, CIs."""
    from sklearn.metrics import roc_auc_score

    from medsight.metrics.bootstrap import bootstrap_ci
    from medsight.metrics.operating_point import binary_threshold
    from medsight.tasks.classification.evaluate import wilson_interval

    val_truth, val_score = image_scores(data, run / "eval" / "val", splits["val"])
    truth, score = image_scores(data, run / "eval" / "test", splits["test"])
    point = binary_threshold(val_truth, val_score, "balanced_accuracy")
    decided = score >= point["threshold"]
    tp, fn = int((decided & (truth == 1)).sum()), int((~decided & (truth == 1)).sum())
    tn, fp = int((~decided & (truth == 0)).sum()), int((decided & (truth == 0)).sum())
    ci = bootstrap_ci(truth, np.stack([1 - score, score], 1), decided.astype(int), ["auc"], n_boot=2000)
    return {"test_images": {"lesion": int(truth.sum()), "none": int((truth == 0).sum())},
            "val_images": {"lesion": int(val_truth.sum()), "none": int((val_truth == 0).sum())},
            "threshold": point["threshold"], "val_at_threshold": point["val"],
            "test": {"auc": float(roc_auc_score(truth, score)), "sensitivity": tp / max(tp + fn, 1),
                     "specificity": tn / max(tn + fp, 1)},
            "ci95": {"auc": ci["auc"], "sensitivity": wilson_interval(tp, tp + fn),
                     "specificity": wilson_interval(tn, tn + fp)}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("codras")
    parser.add_argument("work")
    parser.add_argument("--minutes", type=float, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    work = Path(args.work)
    data, run = link_folder(Path(args.codras), work / "data"), work / f"run_s{args.seed}"
    log = work / f"run_s{args.seed}.log"
    medsight = [sys.executable, "-m", "medsight"]
    steps = {}
    if not (run / "plan.json").exists():
        steps["plan"] = timed([*medsight, "plan", str(data), "--out", str(run)], log)
    train_cmd = [*medsight, "train", str(data), "--out", str(run), "--minutes", str(args.minutes), "--seed", str(args.seed)]
    if not (run / "model.safetensors").exists():
        steps["train"] = timed(train_cmd, log)
    for split in ("test", "val"):
        if not (run / "eval" / split / "metrics.json").exists():
            steps[f"evaluate_{split}"] = timed([*medsight, "evaluate", str(run), "--split", split], log)
    eval_dir = run / "eval" / "test"
    metrics = json.loads((eval_dir / "metrics.json").read_text(encoding="utf-8"))
    plan = json.loads((run / "plan.json").read_text(encoding="utf-8"))
    state = json.loads((run / "state.json").read_text(encoding="utf-8"))
    dataset = json.loads((run / "dataset.json").read_text(encoding="utf-8"))
    record = {
        "command": "python " + shlex.join(sys.argv), "train_command": shlex.join(train_cmd),
        "machine": {"cores": os.cpu_count(), "omp_threads": os.environ.get("OMP_NUM_THREADS", "default"),
                    "platform": platform.platform()},
        "steps": steps, "split_sizes": {k: len(v) for k, v in dataset["splits"].items()},
        "plan": {k: plan.get(k) for k in ("scale", "patch_size", "window_overlap", "tiling", "anchor_shapes",
                                          "batch_size", "iterations_per_epoch", "model")},
        "training": {k: state.get("training", {}).get(k) for k in ("epochs", "best_epoch", "best_score")},
        "test_all_classes": {k: metrics["metrics"][k] for k in ("map_50", "map_50_95", "cpm", "cpm_iou")},
        "test_per_class_ap_50": {n: v["ap_50"] for n, v in metrics["per_class"].items()},
        "test_groups": grouped_scores(data, eval_dir, dataset["splits"]["test"]),
        "image_level_lesion": image_level(data, run, dataset["splits"]),
    }
    out = Path(args.out)
    if out.exists():  # an evaluation of a run trained before keeps that run's training figures
        before = json.loads(out.read_text(encoding="utf-8"))
        for name in ("plan", "train", "evaluate", "evaluate_test"):
            if name not in steps and name in before.get("steps", {}):
                record["steps"]["evaluate_test" if name == "evaluate" else name] = before["steps"][name]
    out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({"test_per_class_ap_50": record["test_per_class_ap_50"],
                      "groups": {g: {"map_50": v["map_50"], "cpm": v["cpm"]} for g, v in record["test_groups"].items()}}))


if __name__ == "__main__":
    main()
