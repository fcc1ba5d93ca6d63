"""The classification report: a summary in words, the operating point, curves, confusion matrix, per-class
table, probabilities, calibration, training curves and the most confident mistakes, as report.html and plots/.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from medsight.errors import MedsightError
from medsight.report import plots
from medsight.report.html import Section, escape, format_value, metric_label, write_report

MISTAKES_SHOWN = 12


def write_classification_report(run: Any, task: Any, dataset: Any, indices: np.ndarray, labels: np.ndarray,
                                probs: np.ndarray, decisions: np.ndarray, metrics: dict[str, Any],
                                out_dir: Path) -> Path:
    """report.html (and its figures under plots/) for the split that metrics describe."""
    sections = report_sections(run, dataset, indices, labels, probs, decisions, metrics, out_dir / "plots")
    details = _details(run, task, metrics)
    kind = "multi-label" if metrics["multilabel"] else f"{len(metrics['classes'])} classes"
    subtitle = f"{details['model']} · {metrics['num_cases']} cases · {kind}"
    return write_report(out_dir / "report.html", _title(task, dataset, metrics["split"]), headline(metrics), sections,
                        details=details, subtitle=subtitle, definitions=metrics["definitions"])


def _title(task: Any, dataset: Any, split: str) -> str:
    source = Path(str(task.info.get("source") or dataset.path))
    name = source.name.split(".")[0] if source.suffix else source.name
    return f"Classification report: {name}, {split} split"


def headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """The summary cards: headline metrics with their 95% intervals; sensitivity and specificity when binary."""
    values, ci = metrics["metrics"], metrics["ci95"]
    if metrics["multilabel"]:
        keys = ("auc", "accuracy", "f1", "exact_match", "ece")
    else:
        keys = ("balanced_accuracy", "accuracy", "auc", "f1", "kappa", "kappa_quadratic", "ece")
    cards = {k: {"value": values[k], "ci95": ci.get(k)} for k in keys if k in values}
    names = metrics["classes"]
    if "sensitivity" in values:
        cards["sensitivity"] = {"value": values["sensitivity"], "ci95": ci.get("sensitivity"),
                                "help": f"share of '{names[1]}' cases called '{names[1]}'"}
        cards["specificity"] = {"value": values["specificity"], "ci95": ci.get("specificity"),
                                "help": f"share of '{names[0]}' cases called '{names[0]}'"}
    return cards


def _details(run: Any, task: Any, metrics: dict[str, Any]) -> dict[str, Any]:
    try:
        model = run.load_config().model
    except (MedsightError, OSError):
        model = "unknown"
    return {"run": str(Path(run.path).resolve()), "model": model, "split": metrics["split"],
            "cases": metrics["num_cases"], "classes": " | ".join(metrics["classes"]),
            "data": task.info.get("source", ""), "95% confidence intervals": metrics["ci_method"]}


def _with_ci(metrics: dict[str, Any], name: str, inside_brackets: bool = False) -> str:
    """"0.642 (95% CI 0.572 to 0.705)", or "0.642, 95% CI 0.572 to 0.705" for use inside brackets."""
    value, ci = metrics["metrics"].get(name), metrics["ci95"].get(name)
    if not ci:
        return format_value(value)
    return f"{format_value(value)}, 95% CI {_ci_text(ci)}" if inside_brackets else f"{format_value(value)} (95% CI {_ci_text(ci)})"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def plain_summary(metrics: dict[str, Any]) -> str:
    """Two or three sentences a clinician can read without the figures."""
    names, cases, m = metrics["classes"], metrics["num_cases"], metrics["metrics"]
    if metrics["multilabel"]:
        return (f"On {cases} {escape(metrics['split'])} cases with {len(names)} labels each, a label was right "
                f"{_percent(m['accuracy'])} of the time on average, and every label of a case was right for "
                f"{_percent(m['exact_match'])} of the cases. Mean ROC AUC over the labels: {_with_ci(metrics, 'auc')}.")
    cm = np.asarray(m["confusion_matrix"])
    text = f"On {cases} {escape(metrics['split'])} cases, {int(np.trace(cm))} were classified correctly ({_percent(m['accuracy'])}). "
    if len(names) == 2:
        positive, negative = escape(names[1]), escape(names[0])
        text += (f"The model found {cm[1, 1]} of {cm[1].sum()} '{positive}' cases (sensitivity {_with_ci(metrics, 'sensitivity', True)}) "
                 f"and called {cm[0, 0]} of {cm[0].sum()} '{negative}' cases '{negative}' "
                 f"(specificity {_with_ci(metrics, 'specificity', True)}). ")
    else:
        off = cm - np.diag(np.diag(cm))
        if off.any():
            i, j = np.unravel_index(int(off.argmax()), off.shape)
            text += (f"The most frequent mistake was calling '{escape(names[i])}' cases '{escape(names[j])}' "
                     f"({off[i, j]} of {cm[i].sum()}). ")
        text += f"Balanced accuracy (the mean sensitivity over classes): {_with_ci(metrics, 'balanced_accuracy')}. "
    return text + f"ROC AUC: {_with_ci(metrics, 'auc')}."


def describe_operating_point(point: dict[str, Any], names: Sequence[str], multilabel: bool) -> str:
    """One plain sentence saying how probabilities became decisions."""
    rule = point.get("rule", "argmax")
    if "note" in point:
        return f"Each case gets its most probable class ({escape(point['note'])})."
    goal = {"balanced_accuracy": "the best balanced accuracy", "youden": "the best sensitivity + specificity"}.get(
        rule, f"a sensitivity of at least {rule.split(':', 1)[1]}" if rule.startswith("sensitivity:") else escape(rule))
    if multilabel:
        cuts = ", ".join(f"{escape(n)} {t:.3f}" for n, t in zip(names, point["thresholds"]))
        return f"A label is called present when its probability reaches its threshold ({cuts})."
    if "threshold" in point:
        seen = point.get("val", {})
        reached = ", ".join(f"{k.replace('_', ' ')} {v:.3f}" for k, v in seen.items())
        return (f"A case is called <b>{escape(names[1])}</b> when its probability reaches <b>{point['threshold']:.3f}</b> "
                f"(not 0.5): the threshold chosen on the validation split for {goal}"
                + (f" (validation: {reached})." if reached else "."))
    if "log_offsets" in point:
        if not any(abs(v) > 1e-9 for v in point["log_offsets"]):
            return f"Each case gets its most probable class: no class re-weighting did better on validation ({goal})."
        return ("Each case gets the class with the highest probability after dividing by the class's prior, "
                f"chosen on the validation split for {goal}; rare classes are called more often than at plain argmax.")
    return "Each case gets its most probable class."


def _comparison_table(metrics: dict[str, Any]) -> list[list[Any]]:
    chosen, plain = metrics["metrics"], metrics["metrics_argmax"]
    keys = [k for k in chosen if isinstance(chosen[k], (float, type(None))) and k in plain]
    plain_name = "threshold 0.5" if metrics["multilabel"] else "argmax"
    return [["metric", "at the operating point", f"at {plain_name}", "95% CI (operating point)"]] + [
        [metric_label(k), chosen[k], plain[k], _ci_text(metrics["ci95"].get(k))] for k in keys]


def _ci_text(ci: Sequence[float] | None) -> str:
    return "" if not ci else f"{format_value(ci[0])} to {format_value(ci[1])}"


PER_CLASS_COLUMNS = {"precision": "precision (PPV)", "recall": "recall (sensitivity)", "f1": "F1", "auc": "ROC AUC",
                     "accuracy": "accuracy", "support": "cases"}


def _per_class_table(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    key = "label" if metrics["multilabel"] else "class"
    return [{key: name, **{PER_CLASS_COLUMNS.get(k, k): v for k, v in values.items()}}
            for name, values in metrics["per_class"].items()]


def _best_epoch(log: dict[str, np.ndarray]) -> int | None:
    """The epoch training kept: the validation score is AUC when logged, else balanced accuracy, else -loss."""
    for column, sign in (("auc", 1.0), ("balanced_accuracy", 1.0), ("val_loss", -1.0)):
        values = log.get(column)
        if values is not None and np.isfinite(values).any():
            return int(log["epoch"][int(np.nanargmax(sign * values))])
    return None


def _roc_pr_inputs(labels: np.ndarray, probs: np.ndarray, names: Sequence[str], multilabel: bool):
    """0/1 target columns, scores and names: the positive class when binary, one-vs-rest otherwise."""
    if multilabel:
        return labels, probs, list(names)
    if probs.shape[1] == 2:
        return (labels == 1)[:, None], probs[:, [1]], [names[1]]
    return np.eye(probs.shape[1], dtype=bool)[labels], probs, list(names)


def _curve_sections(labels, probs, decisions, names, multilabel, plot_dir: Path) -> list[Section]:
    targets, scores, curve_names = _roc_pr_inputs(labels, probs, names, multilabel)
    roc_markers, pr_markers = [], []
    if not multilabel and probs.shape[1] == 2 and (labels == 1).any() and (labels == 0).any():
        positive, called = labels == 1, decisions == 1
        sensitivity, false_positive_rate = called[positive].mean(), called[~positive].mean()
        precision = positive[called].mean() if called.any() else math.nan
        roc_markers = [("operating point", float(false_positive_rate), float(sensitivity))]
        pr_markers = [("operating point", float(sensitivity), float(precision))] if called.any() else []
    suffix = (" per label" if multilabel else f": {names[1]}" if probs.shape[1] == 2 else ": each class vs the rest")
    roc = plots.roc_curves(targets, scores, plot_dir / "roc.png", curve_names, roc_markers, title=f"ROC curve{suffix}")
    pr = plots.pr_curves(targets, scores, plot_dir / "pr.png", curve_names, pr_markers,
                         title=f"Precision-recall{suffix}")
    which = ("for each label" if multilabel else f"for the positive class '{names[1]}'" if probs.shape[1] == 2
             else "for each class against the rest")
    return [Section(
        "ROC and precision-recall curves", images=[roc, pr],
        how_to_read=f"Curves {which}. A curve hugging the top-left (ROC) or top-right (precision-recall) corner "
                    "separates the classes well; the diagonal is guessing and the dotted line is the prevalence. "
                    "The circle marks where the model's decisions sit.")]


def report_sections(run: Any, dataset: Any, indices: np.ndarray, labels: np.ndarray, probs: np.ndarray,
                    decisions: np.ndarray, metrics: dict[str, Any], plot_dir: Path) -> list[Section]:
    """Every section of the classification report, writing its figures into plot_dir."""
    names, multilabel = metrics["classes"], metrics["multilabel"]
    sections = [Section("In words", html=f"<p>{plain_summary(metrics)}</p>"), Section(
        "Operating point", html=f"<p>{describe_operating_point(metrics['operating_point'], names, multilabel)}</p>",
        table=_comparison_table(metrics),
        how_to_read="Probabilities become decisions at the operating point; the columns show the same "
                    "cases at the operating point and at the plain default.")]
    sections += _curve_sections(labels, probs, decisions, names, multilabel, plot_dir)
    if not multilabel:
        cm = plots.confusion_matrix_plot(metrics["metrics"]["confusion_matrix"], plot_dir / "confusion_matrix.png", names)
        sections.append(Section(
            "Confusion matrix", images=[cm],
            how_to_read="Rows are the true class, columns the model's call. The diagonal holds the correct "
                        "calls; the right panel shows, per true class, where its cases went (the diagonal "
                        "is that class's sensitivity)."))
    sections.append(Section(
        "Per class" if not multilabel else "Per label", table=_per_class_table(metrics),
        how_to_read="Recall is the sensitivity for that class, precision its positive predictive value; "
                    "support is the number of cases of the class in this split."))
    sections.append(_probability_section(labels, probs, names, multilabel, metrics["operating_point"], plot_dir))
    sections.append(_calibration_section(labels, probs, metrics, multilabel, plot_dir))
    if Path(run.log_path).is_file():
        best = run.load_state().get("training", {}).get("best_epoch") or _best_epoch(plots.read_log(run.log_path))
        curves = plots.training_curves(run.log_path, plot_dir / "training_curves.png", best)
        sections.append(Section(
            "Training curves", images=[curves],
            how_to_read="Loss should fall and validation metrics rise; a validation loss that climbs while the "
                        "training loss keeps falling is overfitting. The dotted line is the epoch whose weights "
                        "are used."))
    sections.append(_mistakes_section(dataset, indices, labels, probs, decisions, names, multilabel, plot_dir))
    return sections


def _probability_section(labels, probs, names, multilabel, point, plot_dir: Path) -> Section:
    if multilabel:
        groups = {f"{n} (present)": probs[labels[:, k] == 1, k] for k, n in enumerate(names)}
        title, ylabel = "Predicted probability when the label is present", "probability of the label"
    elif probs.shape[1] == 2:
        groups = {f"true {n}": probs[labels == k, 1] for k, n in enumerate(names)}
        title, ylabel = f"Predicted probability of '{names[1]}' by true class", f"p({names[1]})"
    else:
        groups = {n: probs[labels == k, k] for k, n in enumerate(names)}
        title, ylabel = "Probability given to the true class", "p(true class)"
    threshold = point.get("threshold", 0.5 if probs.shape[1] == 2 and not multilabel else None)
    path = plots.box_plot(groups, plot_dir / "probabilities.png", ylabel=ylabel, title=title, reference=threshold,
                          reference_label=None if threshold is None else f"decision threshold {threshold:.3f}")
    return Section("Predicted probabilities", images=[path],
                   how_to_read="Each dot is one case. Well separated groups mean the model tells the classes apart; "
                               "overlap is where it hesitates.")


def _calibration_section(labels, probs, metrics, multilabel, plot_dir: Path) -> Section:
    if multilabel:
        confidence, outcome, xlabel = probs.reshape(-1), labels.reshape(-1), "predicted probability of a label"
    else:
        confidence, outcome = probs.max(axis=1), probs.argmax(axis=1) == labels
        xlabel = "probability of the most probable class"
    path = plots.calibration_plot(confidence, outcome, plot_dir / "calibration.png", ece=metrics["metrics"].get("ece"),
                                  xlabel=xlabel)
    return Section("Calibration", images=[path],
                   how_to_read="If the model says 80%, it should be right 8 times in 10: bars on the dashed diagonal "
                               "mean the probabilities can be taken at face value; bars below it mean over-confidence. "
                               "The histogram shows how many cases fall in each bin.")


def pick_mistakes(wrong: np.ndarray, confidence: np.ndarray, groups: np.ndarray, count: int) -> list[int]:
    """The most confident mistakes, shared in turn among the true classes so that every kind of error shows.

    Returned grouped by true class, most confident first within each.
    """
    ranked = np.argsort(-confidence, kind="stable")
    queues = {int(g): [int(i) for i in ranked if wrong[i] and groups[i] == g] for g in np.unique(groups[wrong])}
    chosen: list[int] = []
    while len(chosen) < count and any(queues.values()):
        for queue in queues.values():
            if queue and len(chosen) < count:
                chosen.append(queue.pop(0))
    return sorted(chosen, key=lambda i: (int(groups[i]), -float(confidence[i])))


def _mistakes_section(dataset, indices, labels, probs, decisions, names, multilabel, plot_dir: Path) -> Section:
    if multilabel:
        wrong_cells = decisions != labels
        # how sure the model was of its wrong calls: p for a false label, 1 - p for a missed one
        certainty = np.where(decisions == 1, probs, 1 - probs)
        confidence = np.where(wrong_cells, certainty, -1).max(axis=1)
        wrong, groups = wrong_cells.any(axis=1), np.zeros(len(labels), np.int64)
    else:
        wrong, groups = decisions != labels, labels
        confidence = probs[np.arange(len(decisions)), decisions]
    order = pick_mistakes(wrong, confidence, groups, MISTAKES_SHOWN)
    how = ("The cases the model got wrong while being most sure, taken in turn from each true class, with the "
           "true class, the call and the probability of that call. Look for label errors, artefacts or a pattern "
           "the model missed.")
    if not order:
        return Section("Most confident mistakes", html="<p>No mistakes on this split.</p>", how_to_read=how)
    images, captions = [], []
    for i in order:
        images.append(dataset.load_case(int(indices[i])))
        case = dataset.case_ids[int(indices[i])]
        if multilabel:
            missed = [n for k, n in enumerate(names) if labels[i, k] and not decisions[i, k]]
            false = [n for k, n in enumerate(names) if decisions[i, k] and not labels[i, k]]
            captions.append(f"{case}\nmissed: {', '.join(missed) or '-'}\nfalse: {', '.join(false) or '-'}")
        else:
            captions.append(f"{case}\ntrue: {names[labels[i]]}\ncalled: {names[decisions[i]]} (p {confidence[i]:.2f})")
    path = plots.image_grid(images, captions, plot_dir / "confident_mistakes.png", columns=6)
    note = " 3D images show their middle slice." if np.asarray(images[0]).ndim == 4 else ""
    return Section(f"Most confident mistakes ({int(wrong.sum())} mistakes in all)", images=[path],
                   how_to_read=how + note)
