"""`medsight crossval DATA --out DIR --folds 5`: one plan, K fold runs, out-of-fold metrics, the fold ensemble on test.

DIR/plan.json is planned once on every fold's training cases and copied into each DIR/fold_K, so the folds
share it and ensemble. Each fold trains in its own process (`medsight train ... --fold K`, its output in
DIR/fold_K/train.log), one after another or --parallel N at a time; a rerun skips finished folds and resumes
unfinished ones from their checkpoint. Then each fold is evaluated on its validation cases: pooled, these are
the out-of-fold results (each case predicted by the one model that did not train on it), with bootstrap 95%
intervals over cases (detection: every fold's validation boxes scored together, with intervals over images).
The folds' ensemble (mean probabilities; detection: the union of their boxes, merged by per-class NMS) is
evaluated on the test split.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from medsight.errors import MedsightError
from medsight.jsonio import load_json, save_json

N_BOOT = 1000
CROSSVAL_DEFINITIONS = {
    "out_of_fold": "every fold's validation cases pooled, each predicted by the one fold model that did not train "
                   "on it; segmentation: means of per-case figures; classification and detection: the figures "
                   "computed once over all pooled cases (detection: COCO matching per image, AP over all images)",
    "ci95": f"bootstrap 95% percentile interval, {N_BOOT} resamples of the cases (detection: of the images or scans)",
    "test_ensemble": "the fold models together on the test split, which no fold trained or validated on: mean of "
                     "their probabilities; detection: the union of their boxes merged by per-class NMS at IoU 0.5",
}


def fold_dir(out: Path, fold: int) -> Path:
    return out / f"fold_{fold}"


def is_finished(run: Path) -> bool:
    """A fold run is finished once training wrote its final state (state.json with "training")."""
    state = run / "state.json"
    return state.is_file() and "training" in load_json(state)


def train_command(data: Path, run: Path, fold: int, options: dict[str, Any]) -> list[str]:
    command = [sys.executable, "-m", "medsight", "train", str(data), "--out", str(run), "--fold", str(fold),
               "--seed", str(options.get("seed", 0))]
    for flag in ("minutes", "epochs", "model"):
        if options.get(flag) is not None:
            command += [f"--{flag}", str(options[flag])]
    if (run / "config.json").is_file():
        command.append("--resume")
    return command


def train_folds(data: Path, out: Path, folds: list[int], options: dict[str, Any], parallel: int,
                echo: Callable[[str], None]) -> None:
    """Train the unfinished folds, at most `parallel` processes at once; fail naming a fold's log."""
    waiting = [k for k in folds if not is_finished(fold_dir(out, k))]
    for k in sorted(set(folds) - set(waiting)):
        echo(f"fold {k}: finished before, skipped")
    running: dict[int, tuple[subprocess.Popen, Any]] = {}
    failed: list[int] = []
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    while waiting or running:
        while waiting and len(running) < max(1, parallel):
            k = waiting.pop(0)
            run = fold_dir(out, k)
            run.mkdir(parents=True, exist_ok=True)
            if not (run / "plan.json").is_file():
                shutil.copyfile(out / "plan.json", run / "plan.json")  # the one shared plan
            command = train_command(data, run, k, options)
            log = open(run / "train.log", "a", encoding="utf-8")
            echo(f"fold {k}: {'resuming' if '--resume' in command else 'training'} (log {run / 'train.log'})")
            running[k] = (subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env), log)
        time.sleep(0.5)
        for k, (process, log) in list(running.items()):
            if process.poll() is None:
                continue
            log.close()
            del running[k]
            if process.returncode != 0:
                failed.append(k)
            else:
                echo(f"fold {k}: finished")
    if failed:
        log = fold_dir(out, failed[0]) / "train.log"
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
        raise MedsightError(log, f"fold {failed[0]} failed: {lines[-1] if lines else 'no output'}")


# out-of-fold results --------------------------------------------------------------------------------------
def percentile_ci(values: np.ndarray, seed: int = 0) -> list[float] | None:
    """Bootstrap 95% interval of the mean of per-case values."""
    values = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if values.size == 0:
        return None
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, (N_BOOT, values.size))].mean(axis=1)
    return [float(v) for v in np.percentile(means, [2.5, 97.5])]


def pooled_segmentation(fold_results: list[dict[str, Any]]) -> dict[str, Any]:
    """Out-of-fold Dice (and HD95, NSD) pooled over every fold's validation cases, with bootstrap intervals."""
    rows = [row for result in fold_results for row in result.get("per_case", [])]
    out: dict[str, Any] = {"num_cases": len(rows), "metrics": {}, "per_class": {}}
    for name in ("dice", "hd95", "nsd"):
        values = np.array([row.get(name) for row in rows if row.get(name) is not None], dtype=float)
        if values.size:
            out["metrics"][name] = {"value": float(np.nanmean(values)), "ci95": percentile_ci(values)}
    classes = list(rows[0]["per_class"]) if rows else []
    for name in classes:
        values = np.array([row["per_class"][name]["dice"] for row in rows], dtype=float)
        out["per_class"][name] = {"dice": {"value": float(np.nanmean(values)), "ci95": percentile_ci(values)}}
    return out


def read_predictions(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(true class, probabilities) of a single-label predictions.csv."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    prob_columns = [c for c in (rows[0] if rows else {}) if c.startswith("prob_")]
    truth = np.array([int(r["true"]) for r in rows], dtype=np.int64)
    probs = np.array([[float(r[c]) for c in prob_columns] for r in rows], dtype=np.float64)
    return truth, probs


def pooled_classification(eval_dirs: list[Path]) -> dict[str, Any]:
    """Out-of-fold classification metrics from the folds' validation predictions, with bootstrap intervals."""
    from medsight.metrics.bootstrap import bootstrap_ci
    from medsight.metrics.classification import classification_metrics

    parts = [read_predictions(d / "predictions" / "predictions.csv") for d in eval_dirs]
    truth = np.concatenate([t for t, _ in parts])
    probs = np.concatenate([p for _, p in parts])
    metrics = classification_metrics(truth, probs)
    names = ("auc", "accuracy", "balanced_accuracy", "f1")
    intervals = bootstrap_ci(truth, probs, metric_names=names, n_boot=N_BOOT)
    return {"num_cases": int(len(truth)), "operating_point": "argmax (pooled over folds)",
            "metrics": {n: {"value": metrics.get(n), "ci95": intervals.get(n)} for n in names}}


def headline(task: str, metrics: dict[str, Any]) -> dict[str, Any]:
    keys = {"classification": ("auc", "accuracy", "balanced_accuracy"), "segmentation": ("dice", "hd95", "nsd"),
            "detection": ("map_50", "map_50_95", "mar_100", "map50_voc_allpoint", "cpm")}[task]
    inner = metrics.get("metrics", metrics)
    return {k: (inner[k]["value"] if isinstance(inner.get(k), dict) else inner.get(k)) for k in keys if k in inner}


# the command ------------------------------------------------------------------------------------------------
def crossval(data: str | Path, out: str | Path, folds: int = 5, minutes: float | None = None,
             epochs: int | None = None, model: str | None = None, parallel: int = 1, seed: int = 0,
             echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Train `folds` folds from one plan, pool their out-of-fold metrics, evaluate their ensemble on test."""
    from medsight.data.splits import planning_view, save_generated
    from medsight.evaluation.ensemble import evaluate_ensemble
    from medsight.evaluation.runs import evaluate_run
    from medsight.io.formats import read_dataset
    from medsight.run import RunFolder
    from medsight.tasks.registry import get_task

    data, out = Path(data).resolve(), Path(out)
    dataset = read_dataset(data)
    task_cls = get_task(dataset.task)
    save_generated(dataset, echo)
    available = dataset.split_info.get("num_folds", 1)
    if folds < 2 or folds > available:
        raise MedsightError(dataset.split_info.get("file", data), f"has {available} fold(s); --folds {folds} "
                            f"needs 2 to {available} (remove a data-given validation split to get five folds)")
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "plan.json").is_file():
        RunFolder(out).save_plan(task_cls.make_plan(planning_view(dataset)))
        echo(f"plan: {out / 'plan.json'} (every fold's training cases; shared by all folds)")
    options = {"minutes": minutes, "epochs": epochs, "model": model, "seed": seed}
    fold_ids = list(range(folds))
    train_folds(data, out, fold_ids, options, parallel, echo)

    task = task_cls.name
    per_fold, fold_results = [], []
    for k in fold_ids:
        result = evaluate_run(fold_dir(out, k), split="val")
        metrics = load_json(fold_dir(out, k) / "eval" / "val" / "metrics.json")
        fold_results.append(metrics)
        per_fold.append({"fold": k, "val_cases": len(dataset_fold_val(dataset, k)), **headline(task, metrics),
                         "report": str(result.get("report", ""))})
    summary: dict[str, Any] = {"data": str(data), "task": task, "folds": folds, "split": dataset.split_info.get("file"),
                               "split_seed": dataset.split_info.get("seed"), "per_fold": per_fold}
    names = [k for k in per_fold[0] if k not in ("fold", "val_cases", "report")]
    summary["fold_mean_sd"] = {n: [float(np.mean([f[n] for f in per_fold])), float(np.std([f[n] for f in per_fold], ddof=1))]
                               for n in names if all(isinstance(f.get(n), (int, float)) for f in per_fold)}
    if task == "segmentation":
        summary["out_of_fold"] = pooled_segmentation(fold_results)
    elif task == "classification" and not dataset.info().get("multilabel"):
        summary["out_of_fold"] = pooled_classification([fold_dir(out, k) / "eval" / "val" for k in fold_ids])
    elif task == "detection":
        from medsight.evaluation.crossval_detection import pooled_detection

        position = {case: i for i, case in enumerate(dataset.case_ids)}
        summary["out_of_fold"] = pooled_detection(dataset, load_json(out / "plan.json"),
                                                  [fold_dir(out, k) / "eval" / "val" for k in fold_ids],
                                                  [[position[c] for c in dataset_fold_val(dataset, k)] for k in fold_ids])
    else:
        summary["out_of_fold"] = None  # multi-label classification: the folds' own figures above
    if "test" in dataset.splits and len(dataset.splits["test"]):
        runs = [fold_dir(out, k) for k in fold_ids]
        ensemble = evaluate_ensemble(runs, split="test", out=out / "ensemble_test")
        written = load_json(out / "ensemble_test" / "metrics.json")
        summary["test_ensemble"] = {"cases": int(len(dataset.splits["test"])), **headline(task, written),
                                    "combine": written["ensemble"]["combine"], "report": str(ensemble.get("report", ""))}
    else:
        summary["test_ensemble"] = None
        echo("no test split: the data names no test cases and its splits file holds none")
    summary["definitions"] = {**fold_results[0].get("definitions", {}), **CROSSVAL_DEFINITIONS}
    save_json(out / "crossval.json", summary)
    summary["report"] = str(write_crossval_report(out, summary))
    return summary


def dataset_fold_val(dataset, fold: int) -> list[str]:
    return dataset.split_info["folds"][fold]["val"]


def write_crossval_report(out: Path, summary: dict[str, Any]) -> Path:
    """DIR/report.html: the folds side by side, the pooled out-of-fold figures and the test ensemble."""
    from medsight.report.html import Section, escape, write_report

    cards: dict[str, Any] = {}
    oof = summary.get("out_of_fold") or {}
    for name, entry in (oof.get("metrics") or {}).items():
        cards[f"{name} (out of fold)"] = {"value": entry["value"], "ci95": entry["ci95"], "label": f"{name}, out of fold"}
    for name, value in (summary.get("test_ensemble") or {}).items():
        if name not in ("cases", "report", "combine"):
            cards[f"{name} (test ensemble)"] = {"value": value, "label": f"{name}, fold ensemble on test"}
    rows = [{k: v for k, v in f.items() if k != "report"} for f in summary["per_fold"]]
    sections = [Section("Folds side by side", table=rows,
                        how_to_read="Each row is one fold's model scored on the cases it did not train on.")]
    if oof.get("per_class") and summary["task"] == "segmentation":
        sections.append(Section("Out-of-fold Dice per class", table=[
            {"class": n, "dice": e["dice"]["value"], "ci95": e["dice"]["ci95"]} for n, e in oof["per_class"].items()]))
    elif oof.get("per_class"):
        sections.append(Section("Out-of-fold average precision per class", table=[
            {"class": n, **e} for n, e in oof["per_class"].items()],
            how_to_read="Every fold's validation boxes scored together: COCO 101-point AP at IoU 0.5 and "
                        "over IoU 0.5:0.95."))
    if summary.get("test_ensemble"):
        link = summary["test_ensemble"]["report"]
        sections.append(Section("Fold ensemble on the test split", html=f"<p>{summary['test_ensemble']['cases']} test "
                                f"cases; full report: {escape(link)}</p>"))
    details = {"data": summary["data"], "task": summary["task"], "folds": summary["folds"],
               "splits file": summary["split"], "split seed": summary["split_seed"]}
    path = out / "report.html"
    write_report(path, f"Cross-validation: {Path(summary['data']).name}, {summary['folds']} folds", cards, sections, details)
    return path
