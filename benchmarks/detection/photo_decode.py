"""Large photographs decoded near the plan's size: cache builds and `medsight predict`, timed, with peak memory.

    OMP_NUM_THREADS=1 nice python benchmarks/detection/photo_decode.py measure SRC DET_FOLDER CLS_FOLDER \
        DET_RUN CLS_RUN WORK --out result.json
    python benchmarks/detection/photo_decode.py compare WORK_BEFORE WORK_AFTER

``measure`` runs every step in its own child process with ``PYTHONPATH=SRC`` (so the code before and after a
change can be measured from two source trees): the classification input cache of CLS_FOLDER (a class
folder) under CLS_RUN's plan, the detection cache of DET_FOLDER (a darknet/YOLO folder) under DET_RUN's plan,
then `medsight predict` of the detection and the classification run on DET_FOLDER's images, each under
``/usr/bin/time -v`` (wall time and peak resident memory of the process). ``compare`` matches the boxes of two
detection predictions (same file and class, greedy by IoU) and the classification probabilities.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

STEPS = ("cache_classification", "cache_detection", "predict_detection", "predict_classification")

CACHE_CLASSIFICATION = """
import json, sys
from pathlib import Path
from medsight.io.formats import read_dataset
from medsight.data.input_cache import InputCache
from medsight.tasks.classification.task import read_input
dataset = read_dataset(sys.argv[1])
plan = json.loads(Path(sys.argv[2]).read_text())
sources = list(dataset.sources)
InputCache(sources, lambda i: read_input(sources[i], plan), plan, Path(sys.argv[3])).ensure(range(len(sources)))
"""

CACHE_DETECTION = """
import json, sys
from pathlib import Path
from medsight.io.formats import read_dataset
from medsight.tasks.detection.cache import PreparedCache
dataset = read_dataset(sys.argv[1])
plan = json.loads(Path(sys.argv[2]).read_text())
PreparedCache(dataset, plan, Path(sys.argv[3])).ensure(range(len(dataset.case_ids)))
"""


def timed(command: list[str], env: dict[str, str], log: Path) -> dict[str, float]:
    """Wall seconds, CPU seconds and peak RSS (MB) of a command under /usr/bin/time -v."""
    if not (log.exists() and "Exit status: 0" in log.read_text(encoding="utf-8")):  # a rerun keeps finished steps
        done = subprocess.run(["/usr/bin/time", "-v", *command], env=env, capture_output=True, text=True)
        log.write_text(done.stdout + done.stderr, encoding="utf-8")
        if done.returncode:
            raise SystemExit(f"{' '.join(command)} failed, see {log}")
    text = log.read_text(encoding="utf-8")
    clock = [float(v) for v in re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text).group(1).split(":")]
    wall = sum(v * 60 ** k for k, v in enumerate(reversed(clock)))
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
    user = float(re.search(r"User time \(seconds\): ([\d.]+)", text).group(1))
    system = float(re.search(r"System time \(seconds\): ([\d.]+)", text).group(1))
    return {"wall_s": round(wall, 1), "cpu_s": round(user + system, 1), "peak_rss_mb": round(rss / 1024, 1)}


def measure(args: argparse.Namespace) -> None:
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(Path(args.src).absolute()), "OMP_NUM_THREADS": "1"}
    photos = sorted(p for p in Path(args.det_folder, "images").glob("*.jpg"))
    py = [sys.executable]
    out: dict[str, object] = {"src": str(args.src), "photos": len(photos), "uptime_start": os.getloadavg()}
    steps = set(args.only.split(",")) if args.only else set(STEPS)
    if "cache_classification" in steps:
        out["cache_classification"] = timed(py + ["-c", CACHE_CLASSIFICATION, args.cls_folder,
                                                  str(Path(args.cls_run) / "plan.json"), str(work / "cache_cls")],
                                            env, work / "cache_cls.log")
    if "cache_detection" in steps:
        out["cache_detection"] = timed(py + ["-c", CACHE_DETECTION, args.det_folder,
                                             str(Path(args.det_run) / "plan.json"), str(work / "cache_det")],
                                       env, work / "cache_det.log")
    for name, run in (("predict_detection", args.det_run), ("predict_classification", args.cls_run)):
        if name not in steps:
            continue
        one = timed(py + ["-m", "medsight", "predict", run, str(photos[0]), "--out", str(work / f"{name}_one")],
                    env, work / f"{name}_one.log")
        every = timed(py + ["-m", "medsight", "predict", run, *map(str, photos), "--out", str(work / name)],
                      env, work / f"{name}.log")
        # model loading and start-up are in both runs: the difference is the cost of the other photographs
        every["per_photo_s"] = round((every["wall_s"] - one["wall_s"]) / max(1, len(photos) - 1), 2)
        every["per_photo_cpu_s"] = round((every["cpu_s"] - one["cpu_s"]) / max(1, len(photos) - 1), 2)
        out[name] = {"one_photo": one, "all": every}
    out["uptime_end"] = os.getloadavg()
    Path(args.out).write_text(json.dumps(out, indent=1), encoding="utf-8")
    print(json.dumps(out, indent=1))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = np.prod(np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0, None))
    union = np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - inter
    return float(inter / union) if union > 0 else 0.0


def detections(folder: Path, min_score: float) -> dict[tuple[str, object], list[tuple[np.ndarray, float]]]:
    found: dict[tuple[str, object], list[tuple[np.ndarray, float]]] = {}
    for r in json.loads((folder / "results.json").read_text(encoding="utf-8")):
        if r["score"] >= min_score:
            x, y, w, h = r["bbox"]
            found.setdefault((r["file"], r["category_id"]), []).append((np.array([x, y, x + w, y + h]), r["score"]))
    return found


def compare(args: argparse.Namespace) -> None:
    out = {}
    before, after = Path(args.before), Path(args.after)
    for min_score in (0.05, 0.3):
        a, b = detections(before / "predict_detection", min_score), detections(after / "predict_detection", min_score)
        common = {file for file, _ in a} & {file for file, _ in b}  # the photographs both predicted
        a = {k: v for k, v in a.items() if k[0] in common}
        b = {k: v for k, v in b.items() if k[0] in common}
        ious, score_diffs, unmatched = [], [], 0
        for key in set(a) | set(b):
            left, right = list(a.get(key, [])), list(b.get(key, []))
            for box, score in sorted(left, key=lambda t: -t[1]):
                best = max(range(len(right)), key=lambda j: iou(box, right[j][0]), default=None)
                if best is None or iou(box, right[best][0]) < 0.5:
                    unmatched += 1
                    continue
                ious.append(iou(box, right[best][0]))
                score_diffs.append(abs(score - right[best][1]))
                right.pop(best)
            unmatched += len(right)
        out[f"boxes_score_ge_{min_score}"] = {
            "before": sum(map(len, a.values())), "after": sum(map(len, b.values())), "matched_iou_ge_0.5": len(ious),
            "unmatched": unmatched, "median_iou": round(float(np.median(ious)), 4) if ious else None,
            "min_iou": round(float(np.min(ious)), 4) if ious else None,
            "max_abs_score_diff": round(float(np.max(score_diffs)), 4) if ious else None,
            "mean_abs_score_diff": round(float(np.mean(score_diffs)), 4) if ious else None}
    if not all((f / "predict_classification" / "predictions.csv").exists() for f in (before, after)):
        print(json.dumps(out, indent=1))
        return
    rows = [list(csv.DictReader(open(f / "predict_classification" / "predictions.csv", encoding="utf-8")))
            for f in (before, after)]
    prob_cols = [c for c in rows[0][0] if c.startswith("p_") or c.startswith("prob")]
    diffs = [abs(float(x[c]) - float(y[c])) for x, y in zip(*rows) for c in prob_cols]
    out["classification"] = {"photos": len(rows[0]), "probability_columns": prob_cols,
                             "max_abs_probability_diff": round(max(diffs), 4) if diffs else None,
                             "mean_abs_probability_diff": round(float(np.mean(diffs)), 4) if diffs else None,
                             "same_class": sum(x.get("class") == y.get("class") for x, y in zip(*rows))}
    print(json.dumps(out, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("measure")
    for name in ("src", "det_folder", "cls_folder", "det_run", "cls_run", "work"):
        m.add_argument(name)
    m.add_argument("--out", required=True)
    m.add_argument("--only", help=f"comma-separated steps among {', '.join(STEPS)} (default: all)")
    c = sub.add_parser("compare")
    c.add_argument("before")
    c.add_argument("after")
    args = parser.parse_args()
    measure(args) if args.command == "measure" else compare(args)


if __name__ == "__main__":
    main()
