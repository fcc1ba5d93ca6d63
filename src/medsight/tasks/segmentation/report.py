"""Segmentation figures and report: per-case table, Dice box plot, overlays of the best, median and worst cases."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from medsight.report.plots import box_plot, display_slice
from medsight.report.html import Section, write_report
from medsight.jsonio import atomic_write

LABEL_COLOURS = np.array([[0, 0, 0], [0.95, 0.25, 0.2], [0.2, 0.6, 1.0], [0.2, 0.85, 0.3], [1.0, 0.8, 0.1],
                          [0.8, 0.3, 0.9], [0.1, 0.9, 0.9], [1.0, 0.5, 0.0]])


def label_colours(label: np.ndarray) -> np.ndarray:
    return LABEL_COLOURS[np.asarray(label, np.int64) % len(LABEL_COLOURS)]


def overlay_slice(image: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(image (C, *spatial), label (*spatial)) -> 2D display image and label: for 3D the slice with most foreground."""
    if label.ndim == 3:
        z = int(np.argmax((label > 0).sum(axis=(1, 2)))) if label.any() else label.shape[0] // 2
        return display_slice(image[:, z]), label[z]
    return display_slice(image), label


def blend(picture: np.ndarray, label: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """RGB picture with label colours blended over the foreground."""
    rgb = picture if picture.ndim == 3 else np.repeat(picture[..., None], 3, -1)
    colours = label_colours(label)
    mask = (label > 0)[..., None]
    return np.where(mask, (1 - alpha) * rgb + alpha * colours, rgb)


def save_overlay(image: np.ndarray, pred: np.ndarray, path: Path, ref: np.ndarray | None = None, title: str = "") -> Path:
    """PNG of the image, the prediction over it and (when given) the reference over it, side by side."""
    from matplotlib.figure import Figure

    slice_ref = ref if ref is not None else pred
    picture, ref_slice = overlay_slice(image, slice_ref)
    pred_slice = overlay_slice(image, slice_ref)[1] if ref is None else _same_slice(pred, slice_ref)
    panels = [("image", picture), ("prediction", blend(picture, pred_slice))]
    if ref is not None:
        panels.append(("reference", blend(picture, ref_slice)))
    fig = Figure(figsize=(2.6 * len(panels), 2.9), layout="constrained")
    for ax, (name, shown) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
        ax.imshow(shown, cmap="gray", interpolation="nearest")
        ax.set_title(name, fontsize=8)
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    return path


def _same_slice(volume: np.ndarray, guide: np.ndarray) -> np.ndarray:
    if volume.ndim == 3:
        z = int(np.argmax((guide > 0).sum(axis=(1, 2)))) if guide.any() else guide.shape[0] // 2
        return volume[z]
    return volume


def pick_cases(per_case: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """(caption, index) of the best, median and worst cases by Dice."""
    if not per_case:
        return []
    order = np.argsort([row["dice"] for row in per_case], kind="stable")
    picks = [("worst", int(order[0])), ("median", int(order[len(order) // 2])), ("best", int(order[-1]))]
    seen: set[int] = set()
    return [(name, i) for name, i in picks if not (i in seen or seen.add(i))]


CaseLoader = Callable[[int], tuple[str, np.ndarray, np.ndarray, np.ndarray]]


def write_segmentation_report(out_dir: Path, result: dict[str, Any], load: CaseLoader, labels: dict[int, str],
                              title: str, details: dict[str, Any] | None = None) -> Path:
    """report.html in out_dir; load(i) gives (case id, image (C, *spatial), prediction, reference) of per_case[i]."""
    plots = out_dir / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    per_case = result["per_case"]
    names = [n for k, n in sorted(labels.items()) if int(k) != 0]
    box = box_plot({n: [row["per_class"][n]["dice"] for row in per_case] for n in names}, plots / "dice_by_class.png",
                   ylabel="Dice", title="Dice per case, by class")
    overlays = []
    for caption, index in pick_cases(per_case):
        case_id, image, pred, ref = load(index)
        overlays.append(save_overlay(image, pred, plots / f"overlay_{caption}.png", ref,
                                     f"{caption}: {case_id} (Dice {per_case[index]['dice']:.3f})"))
    summary = {k: v for k, v in result["metrics"].items()}
    summary["cases"] = result["num_cases"]
    table = [{"case": row["case"], **{m: row[m] for m in ("dice", "iou", "hd95", "nsd")},
              **{f"dice {n}": row["per_class"][n]["dice"] for n in names}} for row in per_case]
    class_table = [{"class": n, **result["per_class"][n]} for n in names]
    sections = [
        Section("Metrics per class", table=class_table,
                how_to_read="Means over cases. Dice and IoU: overlap (1 = identical). HD95: 95th percentile boundary "
                            "distance in mm (lower is better). NSD: share of the boundary within "
                            f"{result.get('nsd_tolerance_mm', 1.0)} mm."),
        Section("Dice by class", images=[box], how_to_read="Each point is one case; the box spans the middle half."),
        Section("Worst, median and best cases", images=overlays,
                how_to_read="Prediction and reference drawn over the image; 3D cases show the slice with most foreground."),
        Section("Per case", table=table),
    ]
    return write_report(out_dir / "report.html", title, summary, sections, details=details,
                        definitions=result.get("definitions"))
