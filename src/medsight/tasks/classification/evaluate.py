"""`medsight evaluate` for classification: the split's predictions, metrics.json and, through report.py, report.html.

Decisions use the operating point stored in RUN/state.json (chosen on the validation split when training
ended); the metrics at plain argmax (multi-label: 0.5) are written beside them so that the effect of the
operating point is visible. Confidence intervals are percentile bootstraps over the cases.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from medsight.errors import MedsightError
from medsight.jsonio import atomic_write, save_json
from medsight.metrics.bootstrap import bootstrap_ci
from medsight.metrics.classification import classification_metrics, multilabel_metrics
from medsight.metrics.definitions import classification_definitions
from medsight.metrics.operating_point import apply_operating_point
from medsight.tasks.classification.report import write_classification_report

N_BOOT = 1000
BOOT_SEED = 0
SINGLE_LABEL_CI = ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "auc", "kappa")
MULTILABEL_CI = ("auc", "accuracy", "f1")


def evaluate_classification(task: Any, run: Any, model: Any, dataset: Any, split: str, out_dir: Path) -> dict[str, Any]:
    """Predict the split, write metrics.json, predictions/, plots/ and report.html; return metrics + "report"."""
    out_dir = Path(out_dir)
    indices = np.asarray(dataset.splits[split])
    if len(indices) == 0:
        raise MedsightError(dataset.path, f"split {split!r} has no cases to evaluate")
    labels = np.asarray(dataset.labels)[indices]
    check_labels_fit(labels, task, dataset, split)
    probs = task.probabilities(task.predict_tensor(model, task.prepared(dataset, indices)))
    names = list(dataset.classes) or [str(k) for k in range(probs.shape[1])]
    case_ids = [dataset.case_ids[int(i)] for i in indices]
    multilabel = bool(task.plan.get("multilabel", False))
    ordinal = bool(task.plan.get("ordinal") or task.info.get("ordinal") or getattr(dataset, "ordinal", False))
    point = run.load_state().get("operating_point")
    if multilabel:
        labels = labels.astype(np.int64)
        decisions, used_point = _multilabel_decisions(probs, point)
        result = multilabel_metrics(labels, probs, used_point["thresholds"], names)
        argmax = multilabel_metrics(labels, probs, None, names)
        ci = bootstrap_ci(labels, probs, decisions, MULTILABEL_CI, n_boot=N_BOOT, seed=BOOT_SEED)
    else:
        labels = labels.astype(np.int64).reshape(-1)
        decisions, used_point = _single_label_decisions(probs, point)
        result = classification_metrics(labels, probs, decisions, names, ordinal)
        argmax = classification_metrics(labels, probs, None, names, ordinal)
        ci_names = SINGLE_LABEL_CI + (("kappa_quadratic",) if ordinal else ())
        ci = bootstrap_ci(labels, probs, decisions, ci_names, n_boot=N_BOOT, seed=BOOT_SEED)
        if probs.shape[1] == 2:
            add_sensitivity_specificity(result["metrics"], ci, labels, decisions)
            add_sensitivity_specificity(argmax["metrics"], {}, labels, probs.argmax(axis=1))
    metrics = {
        "task": "classification", "split": split, "num_cases": int(len(indices)), "classes": names,
        "multilabel": multilabel, "metrics": result["metrics"], "per_class": result["per_class"], "ci95": ci,
        "ci_method": f"percentile bootstrap over cases, {N_BOOT} resamples, seed {BOOT_SEED}"
                     + ("; sensitivity and specificity: Wilson score interval" if "sensitivity" in ci else ""),
        "operating_point": used_point, "metrics_argmax": argmax["metrics"],
        "definitions": classification_definitions(multilabel, ordinal),
    }
    write_predictions(out_dir / "predictions" / "predictions.csv", case_ids, labels, decisions, probs, names, multilabel)
    save_json(out_dir / "metrics.json", metrics)
    report = write_classification_report(run, task, dataset, indices, labels, probs, decisions, metrics, out_dir)
    return {**metrics, "report": str(report)}


def wilson_interval(successes: int, total: int, z: float = 1.959963984540054) -> list[float] | None:
    """95% Wilson score interval of a proportion (better than the normal one near 0 and 1 and for few cases)."""
    if total == 0:
        return None
    share = successes / total
    centre = (share + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(share * (1 - share) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return [max(0.0, centre - half), min(1.0, centre + half)]


def add_sensitivity_specificity(values: dict[str, Any], ci: dict[str, Any], labels: np.ndarray,
                                decisions: np.ndarray) -> None:
    """Binary: sensitivity (recall of class 1) and specificity (recall of class 0), with Wilson intervals."""
    for name, cls in (("sensitivity", 1), ("specificity", 0)):
        members = labels == cls
        hits, total = int((decisions[members] == cls).sum()), int(members.sum())
        values[name] = hits / total if total else None
        ci[name] = wilson_interval(hits, total)


def check_labels_fit(labels: np.ndarray, task: Any, dataset: Any, split: str) -> None:
    """The split's labels must be classes the trained model knows (another --data set may not fit)."""
    num_classes = int(task.plan["num_classes"])
    if task.plan.get("multilabel", False):
        width = labels.shape[1] if labels.ndim == 2 else 1
        if width != num_classes:
            raise MedsightError(dataset.path, f"split {split!r} has {width} labels per case but the model predicts {num_classes}")
    elif labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise MedsightError(dataset.path, f"split {split!r} has class index {int(labels.max())} but the model knows "
                                          f"{num_classes} classes (0..{num_classes - 1})")


# decisions -----------------------------------------------------------------
def _single_label_decisions(probs: np.ndarray, point: dict[str, Any] | None) -> tuple[np.ndarray, dict[str, Any]]:
    """The stored operating point applied, or argmax when there is none or it does not fit these classes."""
    num_classes = probs.shape[1]
    fits = point is not None and "thresholds" not in point and (
        ("threshold" not in point or num_classes == 2)
        and ("log_offsets" not in point or len(point["log_offsets"]) == num_classes)
        and ("grade_cuts" not in point or len(point["grade_cuts"]) == num_classes - 1))
    if not fits:
        note = "no operating point in state.json" if point is None else f"stored point {point} does not fit {num_classes} classes"
        return probs.argmax(axis=1), {"rule": "argmax", "note": note}
    return apply_operating_point(probs, point), dict(point)


def _multilabel_decisions(probs: np.ndarray, point: dict[str, Any] | None) -> tuple[np.ndarray, dict[str, Any]]:
    """Per-label thresholds from the stored point (one list, or one shared threshold), else 0.5 for every label."""
    num_labels = probs.shape[1]
    point = dict(point or {"rule": "threshold"})
    thresholds = point.get("thresholds")
    if thresholds is None or len(thresholds) != num_labels:
        thresholds = [float(point.get("threshold", 0.5))] * num_labels
    point["thresholds"] = [float(t) for t in thresholds]
    point.pop("threshold", None)
    return (probs >= np.asarray(point["thresholds"])).astype(np.int64), point


# files ---------------------------------------------------------------------
def write_predictions(path: Path, case_ids: Sequence[str], labels: np.ndarray, decisions: np.ndarray,
                      probs: np.ndarray, names: Sequence[str], multilabel: bool) -> None:
    """predictions.csv: case id, true and predicted class (index and name), one probability column per class."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    if multilabel:
        writer.writerow(["case_id", *[f"true_{n}" for n in names], *[f"predicted_{n}" for n in names],
                         *[f"prob_{n}" for n in names]])
        for case, truth, decided, row in zip(case_ids, labels, decisions, probs):
            writer.writerow([case, *map(int, truth), *map(int, decided), *(f"{p:.9g}" for p in row)])
    else:
        writer.writerow(["case_id", "true", "true_class", "predicted", "predicted_class", "correct",
                         *[f"prob_{n}" for n in names]])
        for case, truth, decided, row in zip(case_ids, labels, decisions, probs):
            writer.writerow([case, int(truth), names[truth], int(decided), names[decided], int(truth == decided),
                             *(f"{p:.9g}" for p in row)])

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            handle.write(buffer.getvalue())

    atomic_write(path, write)
