"""Test-time mirroring for classification, off against on, on trained runs (no training):

    python benchmarks/classification/tta_ab.py WORK --split val --out RESULT.json --group s0 RUN RUN RUN --group s1 RUN ...

Each group is scored as an ensemble of its runs (a group of one: that run alone) with the plan's inference.tta
off and on, on copies of the runs in WORK/<off|mirror>/ (the originals stay as trained). Mirroring averages the
logits over every subset of the flips the plan's augmentation trained with (BreastMNIST, RetinaMNIST: the
horizontal flip, two passes). The figures are medsight evaluate's: AUC, and ACC / balanced accuracy at argmax.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

FIGURES = ("auc", "accuracy", "balanced_accuracy", "kappa_quadratic")


def copy_with_tta(run: Path, dest: Path, tta: bool) -> Path:
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(run, dest, ignore=shutil.ignore_patterns("eval", "race", "checkpoint.pt"))
    plan_file = dest / "plan.json"
    plan = json.loads(plan_file.read_text())
    plan.setdefault("inference", {})["tta"] = tta
    plan_file.write_text(json.dumps(plan, indent=2))
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("work", type=Path)
    parser.add_argument("--split", default="val")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--group", nargs="+", action="append", required=True, metavar=("NAME", "RUN"))
    args = parser.parse_args()
    from medsight import api

    rows = []
    for name, *runs in args.group:
        row = {"group": name, "runs": runs}
        for arm, tta in (("off", False), ("mirror", True)):
            copies = [copy_with_tta(Path(r), args.work / arm / name / f"m{k}", tta) for k, r in enumerate(runs)]
            started = time.perf_counter()
            if len(copies) > 1:
                result = api.evaluate_ensemble(copies, split=args.split, out=args.work / arm / name / "ensemble")
            else:
                result = api.evaluate(copies[0], split=args.split)
            argmax = result.get("metrics_argmax") or {}
            metrics = result["metrics"]
            row[arm] = {"auc": metrics.get("auc"), "accuracy_argmax": argmax.get("accuracy"),
                        "balanced_accuracy_argmax": argmax.get("balanced_accuracy"),
                        "kappa_quadratic_argmax": argmax.get("kappa_quadratic"),
                        "seconds": round(time.perf_counter() - started, 1)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    summary = {}
    for arm in ("off", "mirror"):
        for key in ("auc", "accuracy_argmax", "balanced_accuracy_argmax"):
            values = [r[arm][key] for r in rows if r[arm][key] is not None]
            summary[f"{arm}_{key}_mean"] = sum(values) / len(values) if values else None
    out = {"command": "python " + " ".join(sys.argv), "split": args.split, "rows": rows, "mean": summary}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
