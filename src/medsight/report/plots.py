"""Report figures as PNG files (matplotlib, Agg, imported on first use); every function returns the PNG's path.

Figures are built on ``matplotlib.figure.Figure`` directly rather than pyplot, so no global backend or figure
state is touched and plotting is safe inside a library call. Task-agnostic helpers (``curve``, ``box_plot``,
``image_grid``, ``training_curves``) are meant for every task; ROC/PR take 0/1 target columns and scores so
that binary, one-vs-rest multiclass and multi-label data all use the same call.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from medsight.errors import MedsightError
from medsight.jsonio import atomic_write
from medsight.metrics.classification import calibration_bins

DPI = 110
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f",
           "#bcbd22")
MAX_LEGEND_ENTRIES = 12  # beyond this a legend hides the curves; the report's tables carry the per-class values


def _figure(width: float, height: float, rows: int = 1, cols: int = 1, **kwargs: Any):
    """A pyplot-free figure and its axes."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False, **kwargs)
    return fig, axes


def _save(fig: Any, path: str | Path) -> Path:
    """Write the figure as PNG atomically and return the path."""
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI))
    return path


def _colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _as_columns(targets: Any, scores: Any, names: Sequence[str] | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    targets = np.asarray(targets)
    scores = np.asarray(scores, np.float64)
    if targets.ndim == 1:
        targets, scores = targets[:, None], scores.reshape(-1, 1)
    if targets.shape != scores.shape:
        raise MedsightError(None, f"targets {targets.shape} and scores {scores.shape} differ in shape")
    names = [str(k) for k in range(targets.shape[1])] if names is None else list(names)
    return targets.astype(bool), scores, names


def _finish_unit_square(ax: Any, markers: Sequence[tuple[str, float, float]], xlabel: str, ylabel: str, title: str,
                       legend_loc: str) -> None:
    """Marked points (label, x, y), [0, 1] axes with equal aspect, grid and legend."""
    for label, x, y in markers:
        ax.plot([x], [y], "o", ms=8, mfc="white", mec="black", mew=1.6, label=label)
    ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), xlabel=xlabel, ylabel=ylabel, title=title, aspect="equal")
    ax.grid(alpha=0.3)
    ax.legend(loc=legend_loc, fontsize=8)


def roc_curves(targets: Any, scores: Any, path: str | Path, names: Sequence[str] | None = None,
               markers: Sequence[tuple[str, float, float]] = (), title: str = "ROC curve") -> Path:
    """ROC curve per column of 0/1 targets (N,K) against scores (N,K); markers are (label, fpr, tpr) points."""
    from sklearn.metrics import roc_auc_score, roc_curve

    targets, scores, names = _as_columns(targets, scores, names)
    fig, axes = _figure(5.2, 4.8)
    ax = axes[0, 0]
    ax.plot([0, 1], [0, 1], ls="--", c="#999999", lw=1, label="chance")
    for k, name in enumerate(names):
        positive = targets[:, k]
        if positive.all() or not positive.any():
            continue  # one class only: no curve exists
        fpr, tpr, _ = roc_curve(positive, scores[:, k])
        auc = roc_auc_score(positive, scores[:, k])
        ax.plot(fpr, tpr, c=_colour(k), lw=1.8, label=f"{name} (AUC {auc:.3f})" if k < MAX_LEGEND_ENTRIES else None)
    _finish_unit_square(ax, markers, "1 - specificity (false positive rate)", "sensitivity (true positive rate)",
                        title, "lower right")
    return _save(fig, path)


def pr_curves(targets: Any, scores: Any, path: str | Path, names: Sequence[str] | None = None,
              markers: Sequence[tuple[str, float, float]] = (), title: str = "Precision-recall curve") -> Path:
    """Precision-recall curve per column, with average precision and the prevalence (a random model's level)."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    targets, scores, names = _as_columns(targets, scores, names)
    fig, axes = _figure(5.2, 4.8)
    ax = axes[0, 0]
    for k, name in enumerate(names):
        positive = targets[:, k]
        if not positive.any():
            continue
        precision, recall, _ = precision_recall_curve(positive, scores[:, k])
        ap = average_precision_score(positive, scores[:, k])
        label = f"{name} (AP {ap:.3f})" if k < MAX_LEGEND_ENTRIES else None
        ax.step(recall, precision, where="post", c=_colour(k), lw=1.8, label=label)
        ax.axhline(positive.mean(), ls=":", c=_colour(k), lw=1, label="prevalence" if len(names) == 1 else None)
    _finish_unit_square(ax, markers, "recall (sensitivity)", "precision (positive predictive value)", title,
                        "lower left")
    return _save(fig, path)


def confusion_matrix_plot(cm: Any, path: str | Path, names: Sequence[str] | None = None,
                          title: str = "Confusion matrix") -> Path:
    """Counts and row-normalised (share of each true class) confusion matrices side by side."""
    cm = np.asarray(cm, np.int64)
    num_classes = cm.shape[0]
    names = [str(k) for k in range(num_classes)] if names is None else [str(n) for n in names]
    rows = cm.sum(axis=1, keepdims=True)
    shares = np.divide(cm, rows, out=np.zeros(cm.shape, np.float64), where=rows > 0)
    side = min(3.2 + 0.45 * num_classes, 9.0)
    fig, axes = _figure(2 * side + 0.6, side, 1, 2)
    annotate = num_classes <= 15
    for ax, values, heading, fmt in ((axes[0, 0], cm, "counts", "{:d}"), (axes[0, 1], shares, "share of each true class", "{:.0%}")):
        shown = values / max(values.max(), 1) if values is cm else values
        ax.imshow(shown, cmap="Blues", vmin=0, vmax=1)
        ax.set(xticks=range(num_classes), yticks=range(num_classes), xlabel="predicted class", ylabel="true class",
               title=f"{title}: {heading}")
        ax.set_xticklabels(names, rotation=45 if num_classes > 4 else 0, ha="right" if num_classes > 4 else "center")
        ax.set_yticklabels(names)
        if annotate:
            for i in range(num_classes):
                for j in range(num_classes):
                    ax.text(j, i, fmt.format(values[i, j]), ha="center", va="center", fontsize=9,
                            color="white" if shown[i, j] > 0.55 else "black")
    return _save(fig, path)


def calibration_plot(confidence: Any, outcome: Any, path: str | Path, n_bins: int = 15, ece: float | None = None,
                     xlabel: str = "predicted probability", title: str = "Calibration") -> Path:
    """Reliability diagram (observed frequency per probability bin) above a histogram of the probabilities."""
    confidence = np.asarray(confidence, np.float64).reshape(-1)
    mean_confidence, mean_outcome, counts = calibration_bins(confidence, outcome, n_bins)
    edges = np.linspace(0, 1, n_bins + 1)
    centres, width = (edges[:-1] + edges[1:]) / 2, 1.0 / n_bins
    fig, axes = _figure(5.2, 6.0, 2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax, hist = axes[0, 0], axes[1, 0]
    filled = counts > 0
    ax.bar(centres[filled], mean_outcome[filled], width=width * 0.9, color="#1f77b4", alpha=0.8,
           label="observed frequency")
    ax.plot([0, 1], [0, 1], ls="--", c="#666666", lw=1, label="perfect calibration")
    ax.plot(mean_confidence[filled], mean_outcome[filled], "o", c="#d62728", ms=4, label="mean probability in bin")
    heading = title if ece is None else f"{title} (ECE {ece:.3f})"
    ax.set(xlim=(0, 1), ylim=(0, 1.02), ylabel="observed frequency", title=heading)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    hist.bar(centres, counts, width=width * 0.9, color="#7f7f7f")
    hist.set(xlabel=xlabel, ylabel="cases")
    hist.grid(alpha=0.3)
    return _save(fig, path)


def read_log(path: str | Path) -> dict[str, np.ndarray]:
    """RUN/log.csv as columns of floats (NaN for empty cells)."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        raise MedsightError(path, f"cannot be read ({exc.strerror})") from None
    if not rows:
        raise MedsightError(path, "has no epochs logged")

    def number(text: str | None) -> float:
        try:
            return float(text) if text not in (None, "") else math.nan
        except ValueError:
            return math.nan

    return {name: np.array([number(row.get(name)) for row in rows]) for name in rows[0]}


def training_curves(log_path: str | Path, path: str | Path, best_epoch: int | None = None) -> Path:
    """Losses, validation metrics and learning rate per epoch from a run's log.csv."""
    from matplotlib.ticker import MaxNLocator

    log = read_log(log_path)
    epochs = log.get("epoch", np.arange(1, len(next(iter(log.values()))) + 1, dtype=np.float64))
    losses = [name for name in log if "loss" in name and np.isfinite(log[name]).any()]
    metrics = [name for name in log if name not in ("epoch", "seconds", "lr", *losses) and np.isfinite(log[name]).any()]
    panels = [("loss", losses), ("validation metrics", metrics), ("learning rate", ["lr"] if "lr" in log else [])]
    panels = [(heading, names) for heading, names in panels if names]
    fig, axes = _figure(4.2 * len(panels), 3.6, 1, len(panels))
    for ax, (heading, names) in zip(axes[0], panels):
        for k, name in enumerate(names):
            values = log[name]
            keep = np.isfinite(values)
            ax.plot(epochs[keep], values[keep], "o-" if keep.sum() < 30 else "-", ms=3, c=_colour(k),
                    label=name.replace("_", " "))
        if best_epoch is not None:
            ax.axvline(best_epoch, c="#444444", ls=":", lw=1, label=f"best epoch ({best_epoch})")
        ax.set(xlabel="epoch", title=heading)
        if len(epochs) <= 12:
            ax.set_xticks(epochs)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if len(epochs) == 1:
            ax.set_xlim(epochs[0] - 0.5, epochs[0] + 0.5)
        if heading == "learning rate":
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)


def display_slice(image: np.ndarray) -> np.ndarray:
    """A (H, W) or (H, W, 3) array in [0, 1] for display: the middle slice of 3D, percentile-windowed."""
    image = np.asarray(image, np.float32)
    if image.ndim == 2:
        image = image[None]
    if image.ndim == 4:  # (C, Z, Y, X): the middle axial slice
        image = image[:, image.shape[1] // 2]
    if image.ndim != 3:
        raise MedsightError(None, f"cannot display an image of shape {image.shape}")
    low, high = np.percentile(image, [0.5, 99.5])
    scaled = np.clip((image - low) / max(high - low, 1e-6), 0, 1)
    return np.moveaxis(scaled[:3], 0, -1) if scaled.shape[0] == 3 else scaled[0]


def image_grid(images: Sequence[np.ndarray], captions: Sequence[str], path: str | Path, columns: int = 6,
               title: str | None = None, caption_colours: Sequence[str] | None = None) -> Path:
    """Images (C, H, W), (H, W) or 3D (C, Z, Y, X: middle slice shown) in a grid, each with its caption."""
    count = max(len(images), 1)
    columns = min(columns, count)
    rows = math.ceil(count / columns)
    fig, axes = _figure(2.1 * columns, 2.5 * rows + (0.3 if title else 0), rows, columns)
    for k, ax in enumerate(axes.ravel()):
        ax.set_axis_off()
        if k >= len(images):
            continue
        ax.imshow(display_slice(images[k]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        colour = caption_colours[k] if caption_colours else "black"
        ax.set_title(captions[k], fontsize=7.5, color=colour)
    if title:
        fig.suptitle(title, fontsize=11)
    return _save(fig, path)


def box_plot(values: Mapping[str, Sequence[float]], path: str | Path, ylabel: str = "", title: str = "",
             reference: float | None = None, reference_label: str | None = None) -> Path:
    """One box (with the individual points) per group, e.g. a score by class; reference draws a dashed line."""
    names = list(values)
    data = [np.asarray(values[name], np.float64) for name in names]
    data = [v[np.isfinite(v)] for v in data]
    fig, axes = _figure(max(4.0, 1.0 + 1.1 * len(names)), 4.0)
    ax = axes[0, 0]
    ax.boxplot(data, showfliers=False, widths=0.5, medianprops={"color": "black"})
    ax.set_xticks(range(1, len(names) + 1), labels=names, rotation=30 if len(names) > 5 else 0)
    rng = np.random.default_rng(0)  # fixed jitter: the same data give the same picture
    for k, group in enumerate(data):
        ax.plot(k + 1 + rng.uniform(-0.15, 0.15, len(group)), group, "o", ms=3, alpha=0.5, c=_colour(k))
    if reference is not None:
        ax.axhline(reference, ls="--", c="#666666", lw=1, label=reference_label)
        if reference_label:
            ax.legend(fontsize=8, loc="best")
    ax.set(ylabel=ylabel, title=title)
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


def curve(series: Mapping[str, tuple[Sequence[float], Sequence[float]]], path: str | Path, xlabel: str = "",
          ylabel: str = "", title: str = "", xscale: str = "linear", ylim: tuple[float, float] | None = None,
          points: bool = False) -> Path:
    """Line plot of named (x, y) series, e.g. FROC (xscale="log") or a metric against a threshold."""
    fig, axes = _figure(5.6, 4.4)
    ax = axes[0, 0]
    for k, (name, (x, y)) in enumerate(series.items()):
        ax.plot(np.asarray(x, np.float64), np.asarray(y, np.float64), "o-" if points else "-", ms=4, lw=1.8,
                c=_colour(k), label=name)
    if xscale == "log":
        ax.set_xscale("log", base=2)
    elif xscale != "linear":
        ax.set_xscale(xscale)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.grid(alpha=0.3, which="both")
    if series:
        ax.legend(fontsize=8)
    return _save(fig, path)
