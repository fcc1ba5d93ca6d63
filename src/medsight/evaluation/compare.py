"""`medsight compare RUN...`: runs side by side, and whether B is better than A on the same test cases.

Each run's figures and 95% intervals come from RUN/eval/<split>/metrics.json. For classification the
per-case predictions (RUN/eval/<split>/predictions/predictions.csv), for segmentation the per-case rows of
metrics.json, give a paired bootstrap: every
resample draws the same cases for both runs, so the interval of B - A reflects only how differently the two
models treat the cases, not which cases the test split happened to hold. Runs whose settings differ only
in their seed or fold are grouped, with the mean and spread of their figures.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from medsight.errors import MedsightError
from medsight.metrics.bootstrap import resample_counts, resampled_scores

N_BOOT = 2000
BOOT_SEED = 0
PAIRED_METRICS = ("balanced_accuracy", "auc", "accuracy", "f1")
PAIRED_CASE_METRICS = ("dice", "iou", "nsd", "hd95")  # segmentation: means of metrics.json's per-case rows
SHOWN_METRICS = {
    "classification": ("balanced_accuracy", "auc", "accuracy", "f1", "sensitivity", "specificity", "ece"),
    "segmentation": ("dice", "iou", "hd95", "nsd"),
    "detection": ("map_50", "map_50_95", "mar_100", "cpm"),
}
REPEAT_SETTINGS = ("seed", "fold")  # settings that repeat an experiment rather than change it
IGNORED_SETTINGS = ("data",)  # the same data set under another path is not a different setting


@dataclass
class RunFigures:
    """One run's settings, figures with intervals, and (classification) its per-case predictions."""

    path: Path
    name: str
    task: str
    settings: dict[str, Any]
    metrics: dict[str, Any]
    ci95: dict[str, Any]
    num_cases: int
    predictions: dict[str, Any] | None = None  # classification: case_ids, y_true, probs, y_pred
    per_case: list[dict[str, Any]] | None = None  # segmentation: metrics.json's per-case rows
    group: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # state.json's training summary: epochs, seconds


def _flat(prefix: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out.update(_flat(f"{prefix}.{key}" if prefix else key, inner))
        return out
    return {prefix: json.dumps(value) if isinstance(value, list) else value}


def read_predictions(path: Path) -> dict[str, Any]:
    """predictions.csv of a single-label classification evaluation -> ids, labels, probabilities, decisions."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or not {"case_id", "true", "predicted"} <= set(rows[0]):
        raise MedsightError(path, "is not a single-label predictions.csv (case_id, true, predicted, prob_*)")
    prob_columns = [c for c in rows[0] if c.startswith("prob_")]
    try:
        return {"case_ids": [r["case_id"] for r in rows],
                "y_true": np.array([int(r["true"]) for r in rows]),
                "y_pred": np.array([int(r["predicted"]) for r in rows]),
                "probs": np.array([[float(r[c]) for c in prob_columns] for r in rows])}
    except ValueError as exc:
        raise MedsightError(path, f"has a value that is not a number ({exc})") from None


def load_run_figures(run_path: str | Path, split: str) -> RunFigures:
    """A run folder's config.json and eval/<split>/metrics.json (and predictions, when it has them)."""
    from medsight.jsonio import load_json

    path = Path(run_path)
    metrics_path = path / "eval" / split / "metrics.json"
    if not (path / "config.json").is_file():
        raise MedsightError(path, "is not a run folder (no config.json)")
    if not metrics_path.is_file():
        raise MedsightError(path, f"has no evaluation of the {split} split; run `medsight evaluate {path} --split {split}`")
    config, metrics = load_json(path / "config.json"), load_json(metrics_path)
    predictions_path = metrics_path.parent / "predictions" / "predictions.csv"
    predictions = None
    if metrics.get("task") == "classification" and not metrics.get("multilabel") and predictions_path.is_file():
        predictions = read_predictions(predictions_path)
    settings = {k: v for k, v in _flat("", config).items() if k not in IGNORED_SETTINGS}
    training = load_json(path / "state.json").get("training", {}) if (path / "state.json").is_file() else {}
    return RunFigures(path=path, name=path.resolve().name, task=str(metrics.get("task", config.get("task"))),
                      settings=settings, metrics=metrics.get("metrics", {}), ci95=metrics.get("ci95", {}) or {},
                      num_cases=int(metrics.get("num_cases", 0)), predictions=predictions, extra=training,
                      per_case=metrics.get("per_case") if isinstance(metrics.get("per_case"), list) else None)


def differing_settings(runs: Sequence[RunFigures]) -> list[str]:
    """Names of the settings whose values are not the same in every run."""
    names: list[str] = []
    for run in runs:
        names += [k for k in run.settings if k not in names]
    return [k for k in names if len({json.dumps(r.settings.get(k), sort_keys=True) for r in runs}) > 1]


def assign_groups(runs: Sequence[RunFigures], differing: Sequence[str]) -> dict[str, list[RunFigures]]:
    """Runs grouped by the differing settings other than seed and fold; each run learns its group's name."""
    groups: dict[str, list[RunFigures]] = {}
    for run in runs:
        key = ", ".join(f"{k}={run.settings.get(k)}" for k in differing if k not in REPEAT_SETTINGS) or "all"
        run.group = key
        groups.setdefault(key, []).append(run)
    return groups


def group_summary(groups: dict[str, list[RunFigures]], metric_names: Sequence[str]) -> list[dict[str, Any]]:
    """Mean and sample standard deviation of each figure over the runs of a group (seeds, folds)."""
    rows = []
    for key, members in groups.items():
        row: dict[str, Any] = {"group": key, "runs": len(members)}
        for name in metric_names:
            values = [float(m.metrics[name]) for m in members if isinstance(m.metrics.get(name), (int, float))]
            row[name] = float(np.mean(values)) if values else None
            row[f"{name} sd"] = float(np.std(values, ddof=1)) if len(values) > 1 else None
        rows.append(row)
    return rows


def aligned(reference: dict[str, Any], other: dict[str, Any], names: tuple[str, str]) -> tuple[dict, dict]:
    """The two runs' predictions on the cases both hold, in the same order; the labels must agree."""
    index = {case: i for i, case in enumerate(other["case_ids"])}
    shared = [(i, index[case]) for i, case in enumerate(reference["case_ids"]) if case in index]
    if not shared:
        raise MedsightError(None, f"{names[0]} and {names[1]} share no test case: they were evaluated on different data")
    first, second = (np.array(side) for side in zip(*shared))
    a = {k: reference[k][first] for k in ("y_true", "y_pred", "probs")}
    b = {k: other[k][second] for k in ("y_true", "y_pred", "probs")}
    if not np.array_equal(a["y_true"], b["y_true"]):
        raise MedsightError(None, f"{names[0]} and {names[1]} give the same cases different labels: not the same data")
    if a["probs"].shape[1] != b["probs"].shape[1]:
        raise MedsightError(None, f"{names[0]} and {names[1]} predict different numbers of classes")
    return a, b


def paired_difference(a: dict[str, Any], b: dict[str, Any], metric_names: Sequence[str] = PAIRED_METRICS,
                      n_boot: int = N_BOOT, seed: int = BOOT_SEED, level: float = 0.95) -> dict[str, dict[str, Any]]:
    """{metric: {difference (B - A), ci95, share_b_better}} from n_boot resamples of the same cases for both."""
    num_cases = len(a["y_true"])
    whole = np.ones((1, num_cases))
    point_a = resampled_scores(a["y_true"], a["probs"], a["y_pred"], whole, metric_names)
    point_b = resampled_scores(b["y_true"], b["probs"], b["y_pred"], whole, metric_names)
    counts = resample_counts(num_cases, n_boot, np.random.default_rng(seed))
    boot_a = resampled_scores(a["y_true"], a["probs"], a["y_pred"], counts, metric_names)
    boot_b = resampled_scores(b["y_true"], b["probs"], b["y_pred"], counts, metric_names)
    tail = 100 * (1 - level) / 2
    out = {}
    for name in metric_names:
        deltas = boot_b[name] - boot_a[name]
        deltas = deltas[~np.isnan(deltas)]
        out[name] = {
            "difference": float(point_b[name][0] - point_a[name][0]),
            "ci95": [float(v) for v in np.percentile(deltas, [tail, 100 - tail])] if deltas.size else None,
            "share_b_better": float(np.mean(deltas > 0)) if deltas.size else None,
            "cases": num_cases,
        }
    return out


def paired_case_difference(a_rows: Sequence[dict[str, Any]], b_rows: Sequence[dict[str, Any]],
                           metric_names: Sequence[str] = PAIRED_CASE_METRICS, n_boot: int = N_BOOT,
                           seed: int = BOOT_SEED, level: float = 0.95) -> dict[str, dict[str, Any]]:
    """{metric: {difference, ci95, share_b_better}} of the mean per-case figure, B - A, on the cases both hold
    with a finite value, the same resampled cases for both (hd95: lower is better, so B is better below 0)."""
    b_by_case = {row.get("case"): row for row in b_rows}
    out = {}
    for name in metric_names:
        pairs = [(float(row[name]), float(b_by_case[row.get("case")][name])) for row in a_rows
                 if row.get("case") in b_by_case and isinstance(row.get(name), (int, float))
                 and isinstance(b_by_case[row.get("case")].get(name), (int, float))]
        pairs = [(x, y) for x, y in pairs if np.isfinite(x) and np.isfinite(y)]
        if not pairs:
            continue
        a, b = (np.array(side) for side in zip(*pairs))
        counts = resample_counts(len(a), n_boot, np.random.default_rng(seed))
        deltas = counts @ (b - a) / len(a)
        better = deltas < 0 if name == "hd95" else deltas > 0
        tail = 100 * (1 - level) / 2
        out[name] = {"difference": float(np.mean(b - a)), "ci95": [float(v) for v in np.percentile(deltas, [tail, 100 - tail])],
                     "share_b_better": float(np.mean(better)), "cases": len(a)}
    return out


def compare_runs(run_paths: Sequence[str | Path], split: str = "test", n_boot: int = N_BOOT) -> dict[str, Any]:
    """Everything `compare` shows: the runs, the settings that differ, groups, and paired differences vs the first."""
    if len(run_paths) < 2:
        raise MedsightError(None, "compare needs at least two run folders")
    runs = [load_run_figures(p, split) for p in run_paths]
    tasks = {r.task for r in runs}
    if len(tasks) > 1:
        raise MedsightError(None, f"compare needs runs of one task, not {', '.join(sorted(tasks))}")
    names = [r.name for r in runs]
    if len(set(names)) < len(names):  # two folders of the same name in different places: name them by path
        for run in runs:
            run.name = str(run.path)
    task = runs[0].task
    shown = [m for m in SHOWN_METRICS.get(task, ()) if any(isinstance(r.metrics.get(m), (int, float)) for r in runs)]
    differing = differing_settings(runs)
    groups = assign_groups(runs, differing)
    reference = runs[0]
    differences: dict[str, Any] = {}
    for other in runs[1:]:
        if reference.predictions is not None and other.predictions is not None:
            a, b = aligned(reference.predictions, other.predictions, (reference.name, other.name))
            differences[other.name] = paired_difference(a, b, n_boot=n_boot)
        elif reference.per_case and other.per_case:
            found = paired_case_difference(reference.per_case, other.per_case, n_boot=n_boot)
            if not found:
                raise MedsightError(None, f"{reference.name} and {other.name} share no test case: they were "
                                          "evaluated on different data")
            differences[other.name] = found
    return {"task": task, "split": split, "runs": runs, "metrics": shown, "differing": differing,
            "groups": group_summary(groups, shown) if len(groups) < len(runs) else [], "reference": reference.name,
            "differences": differences, "n_boot": n_boot}
