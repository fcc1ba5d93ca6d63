"""Fundus lesion classification on the IDRiD photographs (CODRAS boxes), with Grad-CAM checked against the boxes.

    python benchmarks/classification/fundus_folder.py /work/shared/data/idrid_fundus_codras /work/bench/fundus/idrid_lesion
    python benchmarks/classification/fundus_lesion.py /work/shared/data/idrid_fundus_codras /work/bench/fundus/idrid_lesion \
        --minutes 12 --balance weights --out benchmarks/classification/results/fundus_lesion.json --runs /work/bench/fundus/lesion

Trains with `medsight train` (the plan chooses the input size), evaluates the test split (AUC, sensitivity
and specificity at the operating point chosen on validation, with 95% intervals), then runs
`medsight predict --explain` on the test photographs and draws each one's exudate and haemorrhage boxes on
its Grad-CAM overlay (RUN/explain_boxes/). The "pointing" figure is the share of test photographs with
lesions whose Grad-CAM maximum falls inside one of their lesion boxes.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from medmnist import run  # noqa: E402  (the same subprocess runner and CPU accounting)

LESION_CLASSES = {"hard_exudates", "haemorrhage"}


def lesion_boxes(codras: Path, stem: str) -> np.ndarray:
    """(N, 4) lesion boxes as fractions (x0, y0, x1, y1) of the photograph."""
    names = (codras / "retinal.names").read_text(encoding="utf-8").split()
    label_file = codras / "images" / f"{stem}.txt"
    rows = []
    for line in label_file.read_text(encoding="utf-8").splitlines() if label_file.exists() else []:
        fields = line.split()
        if fields and names[int(fields[0])] in LESION_CLASSES:
            cx, cy, w, h = map(float, fields[1:])
            rows.append([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
    return np.asarray(rows, np.float64).reshape(-1, 4)


def draw_boxes(overlay: Path, boxes: np.ndarray, image_rows: int, out: Path) -> None:
    """The boxes on the overlay picture, whose caption strip sits above the image_rows rows of the image."""
    from PIL import Image, ImageDraw

    with Image.open(overlay) as picture:
        picture = picture.convert("RGB")
        draw = ImageDraw.Draw(picture)
        width, top = picture.size[0], picture.size[1] - image_rows
        for x0, y0, x1, y1 in boxes:
            draw.rectangle([x0 * width, top + y0 * image_rows, x1 * width, top + y1 * image_rows],
                           outline=(0, 255, 0), width=2)
        out.parent.mkdir(parents=True, exist_ok=True)
        picture.save(out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("codras")
    parser.add_argument("folder")
    parser.add_argument("--minutes", type=float, default=12)
    parser.add_argument("--balance", default="weights")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", default="/tmp/medsight-bench")
    parser.add_argument("--out", required=True)
    parser.add_argument("--input-size", type=int, default=None,
                        help="edit plan.json's input_size to this side before training (default: the plan's)")
    parser.add_argument("--split", default="test", choices=["val", "test"],
                        help="the split scored: val to choose between arms, test once for the chosen one")
    args = parser.parse_args()
    size_tag = f"_px{args.input_size}" if args.input_size else ""
    codras, folder = Path(args.codras), Path(args.folder)
    run_dir = Path(args.runs) / f"lesion_{args.balance}_s{args.seed}{size_tag}"
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    log = run_dir.parent / f"{run_dir.name}.log"
    medsight = [sys.executable, "-m", "medsight"]
    if args.input_size and not (run_dir / "plan.json").exists():
        run([*medsight, "plan", str(folder), "--out", str(run_dir)], log)
        plan_file = run_dir / "plan.json"
        plan = json.loads(plan_file.read_text(encoding="utf-8"))
        plan["input_size"] = [args.input_size] * plan["spatial_dims"]
        plan_file.write_text(json.dumps(plan, indent=2) + "\n", encoding="utf-8")
    train_cmd = [*medsight, "train", str(folder), "--out", str(run_dir), "--minutes", str(args.minutes),
                 "--balance", args.balance, "--seed", str(args.seed)]
    train_seconds, train_cpu = run(train_cmd, log) if not (run_dir / "model.safetensors").exists() else (None, None)
    eval_seconds, _ = run([*medsight, "evaluate", str(run_dir), "--split", args.split], log)
    metrics = json.loads((run_dir / "eval" / args.split / "metrics.json").read_text(encoding="utf-8"))
    dataset = json.loads((run_dir / "dataset.json").read_text(encoding="utf-8"))
    tests = [folder / case for case in dataset["splits"][args.split]]
    explain_dir = run_dir / f"explain_{args.split}"
    run([*medsight, "predict", str(run_dir), *map(str, tests), "--out", str(explain_dir), "--explain"], log)
    hits, lesion_images = 0, 0
    for case in tests:
        stem = case.resolve().stem
        boxes = lesion_boxes(codras, stem)
        overlay = explain_dir / "explain" / f"{case.stem}_gradcam.png"
        heat_file = explain_dir / "explain" / f"{case.stem}_gradcam.npy"
        if not heat_file.exists():
            continue
        heat = np.load(heat_file)
        if overlay.exists():
            draw_boxes(overlay, boxes, heat.shape[0], run_dir / f"explain_boxes_{args.split}" / f"{case.parent.name}_{case.stem}.png")
        if len(boxes):
            row, col = np.unravel_index(int(np.argmax(heat)), heat.shape)
            y, x = (row + 0.5) / heat.shape[0], (col + 0.5) / heat.shape[1]
            lesion_images += 1
            hits += int(any(x0 <= x <= x1 and y0 <= y <= y1 for x0, y0, x1, y1 in boxes))
    plan = json.loads((run_dir / "plan.json").read_text(encoding="utf-8"))
    state = json.loads((run_dir / "state.json").read_text(encoding="utf-8"))
    m = metrics["metrics"]
    record = {
        "command": "python " + shlex.join(sys.argv), "train_command": shlex.join(train_cmd),
        "input_size": plan["input_size"], "model": json.loads((run_dir / "config.json").read_text(encoding="utf-8"))["model"],
        "train_wall_seconds": train_seconds, "train_cpu_seconds": train_cpu, "eval_wall_seconds": eval_seconds,
        "epochs_run": state.get("training", {}).get("epochs"), "best_epoch": state.get("training", {}).get("best_epoch"),
        "split": args.split, "cases": len(tests), "class_counts": metrics.get("class_counts") or None,
        args.split: {k: m.get(k) for k in ("auc", "sensitivity", "specificity", "balanced_accuracy", "accuracy")},
        "ci95": {k: metrics.get("ci95", {}).get(k) for k in ("auc", "sensitivity", "specificity", "balanced_accuracy")},
        "operating_point": metrics.get("operating_point"),
        "gradcam_peak_in_a_lesion_box": {"hits": hits, "lesion_images": lesion_images},
    }
    out = Path(args.out)
    if train_seconds is None and out.exists():  # trained before: keep that run's training figures
        before = json.loads(out.read_text(encoding="utf-8"))
        record.update({k: before.get(k) for k in ("train_command", "train_wall_seconds", "train_cpu_seconds")})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(record[args.split]), json.dumps(record["ci95"]), record["gradcam_peak_in_a_lesion_box"], flush=True)


if __name__ == "__main__":
    main()
