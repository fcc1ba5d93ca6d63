"""Self-contained HTML reports for any task: one file, images embedded, readable by a clinician.

Usage (the same for classification, segmentation and detection)::

    from medsight.report.html import Section, write_report

    write_report(
        out_dir / "report.html", "Segmentation: shapes2d, test split",
        summary={"dice": {"value": 0.91, "ci95": [0.88, 0.93]}, "hd95": (2.1, [1.7, 2.6]), "cases": 40},
        sections=[Section("Dice per class", how_to_read="Each box is one class; higher is better.",
                          images=[plots_dir / "dice_by_class.png"],
                          table=[{"class": "liver", "dice": 0.95}, {"class": "tumour", "dice": 0.71}])],
        details={"run": str(run.path), "model": "unet", "split": "test"},
    )

``summary`` maps a metric name to a number or string, to ``(value, [low, high])``, or to
``{"value": v, "ci95": [low, high] or None, "label": "shown name", "help": "one-line meaning"}``; these are
the headline cards at the top, with their 95% confidence interval when one is given. Known metric names
(accuracy, auc, dice, hd95, map_50, cpm, ...) get a readable label and a one-line meaning; others are shown
as written. A ``Section`` holds a title, an optional ``how_to_read`` sentence for readers who are not
engineers, an optional trusted ``html`` fragment (escape user text with :func:`escape`), PNG ``images``
(embedded as base64; a missing file shows a note rather than failing the report) and a ``table`` given
as dict rows (columns in first-seen key order) or as sequences whose first row is the header. Floats are
shown with three decimals, None as "n/a". ``details`` is a key/value table about the run (model, data,
split), shown at the end, after ``definitions`` (figure name -> how it is computed; metrics.json's
``definitions`` block).
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import medsight
from medsight.jsonio import atomic_write


@dataclass
class Section:
    """One titled block of the report: a reading hint, free HTML, figures and a table, in that order."""

    title: str
    html: str | None = None
    images: list[str | Path] = field(default_factory=list)
    table: Sequence[Mapping[str, Any]] | Sequence[Sequence[Any]] | None = None
    how_to_read: str | None = None


# name -> (label, meaning) for headline metrics across tasks
METRIC_LABELS: dict[str, tuple[str, str]] = {
    "accuracy": ("Accuracy", "share of cases classified correctly"),
    "balanced_accuracy": ("Balanced accuracy", "mean sensitivity over the classes; not inflated by a common class"),
    "precision": ("Precision", "macro mean: of the cases called a class, the share that truly are"),
    "recall": ("Recall", "macro mean: of the cases of a class, the share that are found"),
    "sensitivity": ("Sensitivity", "share of positive cases that are found"),
    "specificity": ("Specificity", "share of negative cases correctly called negative"),
    "f1": ("F1", "macro mean of the harmonic mean of precision and recall"),
    "auc": ("ROC AUC", "chance that a random positive case scores above a random negative (0.5 = guessing)"),
    "kappa": ("Cohen's kappa", "agreement with the reference beyond chance (0 = chance, 1 = perfect)"),
    "kappa_quadratic": ("Quadratic kappa", "agreement that penalises grades far from the reference more"),
    "ece": ("Calibration error", "mean gap between predicted probability and observed frequency (lower is better)"),
    "exact_match": ("Exact match", "share of cases with every label right"),
    "dice": ("Dice", "overlap with the reference segmentation (1 = identical)"),
    "iou": ("IoU", "intersection over union with the reference segmentation"),
    "hd95": ("HD95", "95th percentile of boundary distance to the reference (lower is better)"),
    "nsd": ("NSD", "share of the boundary within tolerance of the reference"),
    "map_50": ("mAP@0.5", "COCO mean average precision (101-point) with boxes overlapping at least 50%"),
    "map_75": ("mAP@0.75", "COCO mean average precision (101-point) with boxes overlapping at least 75%"),
    "map_50_95": ("mAP@0.5:0.95", "COCO mean average precision over overlap thresholds 0.5 to 0.95"),
    "map50_voc_allpoint": ("mAP@0.5 VOC", "Pascal VOC mean average precision at 50% overlap, all-point area"),
    "mar_100": ("mAR@100", "mean recall with up to 100 detections per image"),
    "cpm": ("CPM", "mean sensitivity at 1/8 to 8 false positives per scan (LUNA16: centre within the lesion's radius)"),
    "cpm_iou": ("CPM (IoU hit)", "CPM with a hit at box overlap IoU >= 0.1 instead of LUNA16's centre rule"),
    "lesion_f1": ("Lesion F1", "lesion-wise detection: connected components found and false ones, per class"),
    "froc": ("FROC", "sensitivity at several false-positive rates per scan"),
}

CSS = """
:root { --ink: #1d2733; --muted: #5b6773; --line: #dde3ea; --accent: #1f5f99; --soft: #f4f7fa; }
* { box-sizing: border-box; }
body { font-family: -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--ink);
       max-width: 1100px; margin: 0 auto; padding: 24px 28px 48px; line-height: 1.45; background: #fff; }
h1 { font-size: 1.6em; margin: 0 0 4px; }
h2 { font-size: 1.2em; margin: 36px 0 6px; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
.subtitle { color: var(--muted); margin: 0 0 18px; }
nav { font-size: 0.9em; margin: 8px 0 20px; display: flex; flex-wrap: wrap; gap: 4px 16px; }
nav a { color: var(--accent); text-decoration: none; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(190px, 1fr)); gap: 12px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; background: var(--soft); }
.card .label { font-size: 0.85em; color: var(--muted); text-transform: uppercase; letter-spacing: 0.03em; }
.card .value { font-size: 1.7em; font-weight: 600; margin: 2px 0; }
.card .ci { font-size: 0.85em; color: var(--ink); }
.card .help { font-size: 0.78em; color: var(--muted); margin-top: 4px; }
.how { font-style: italic; color: var(--muted); margin: 4px 0 12px; }
.figures { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
.figures img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
.figures.pair img { max-width: calc(50% - 8px); }
.missing { color: #a33; font-size: 0.9em; }
table { border-collapse: collapse; margin: 12px 0; font-size: 0.92em; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 12px; text-align: left; }
th { background: var(--soft); font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr:nth-child(even) td { background: #fafbfc; }
table.details td:first-child { color: var(--muted); }
footer { margin-top: 40px; color: var(--muted); font-size: 0.8em; }
@media print { nav { display: none; } h2 { page-break-after: avoid; } img { page-break-inside: avoid; } }
"""


def escape(text: Any) -> str:
    """HTML-escape any value shown as text."""
    return html.escape(str(text), quote=True)


def format_value(value: Any) -> str:
    """A table or card value as text: floats with three decimals, None/NaN as n/a."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != 0 and (abs(value) >= 1000 or abs(value) < 1e-3):
            return f"{value:.3g}"
        return f"{value:.3f}"
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(v) for v in value)
    return str(value)


def metric_label(name: str) -> str:
    """The readable name of a metric key."""
    return METRIC_LABELS.get(name, (name.replace("_", " ").capitalize(), ""))[0]


def _card(name: str, entry: Any) -> str:
    if isinstance(entry, Mapping):
        value, ci = entry.get("value"), entry.get("ci95")
        label, meaning = entry.get("label", metric_label(name)), entry.get("help", METRIC_LABELS.get(name, ("", ""))[1])
    elif isinstance(entry, tuple) and len(entry) == 2:
        (value, ci), label, meaning = entry, metric_label(name), METRIC_LABELS.get(name, ("", ""))[1]
    else:
        value, ci, label, meaning = entry, None, metric_label(name), METRIC_LABELS.get(name, ("", ""))[1]
    ci_text = f"95% CI {format_value(ci[0])} to {format_value(ci[1])}" if ci else "&nbsp;"
    return (f'<div class="card"><div class="label">{escape(label)}</div><div class="value">{escape(format_value(value))}'
            f'</div><div class="ci">{ci_text}</div><div class="help">{escape(meaning)}</div></div>')


def _cell(value: Any) -> str:
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    return f'<td class="num">{escape(format_value(value))}</td>' if numeric else f"<td>{escape(format_value(value))}</td>"


def table_html(rows: Sequence[Mapping[str, Any]] | Sequence[Sequence[Any]], css_class: str = "") -> str:
    """An HTML table from dict rows (union of keys as columns) or from sequences with a header row first."""
    rows = list(rows)
    if not rows:
        return ""
    if isinstance(rows[0], Mapping):
        header: list[Any] = []
        for row in rows:
            header += [k for k in row if k not in header]
        body = [[row.get(k) for k in header] for row in rows]
    else:
        header, body = list(rows[0]), [list(r) for r in rows[1:]]
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    lines = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in body)
    attr = f' class="{css_class}"' if css_class else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{lines}</tbody></table>"


def image_html(path: str | Path) -> str:
    """An <img> holding the PNG as base64, or a short note when the file is missing."""
    path = Path(path)
    try:
        data = base64.b64encode(path.read_bytes()).decode("ascii")
    except OSError:
        return f'<p class="missing">(figure {escape(path.name)} is missing)</p>'
    return f'<img src="data:image/png;base64,{data}" alt="{escape(path.stem.replace("_", " "))}">'


def _anchor(index: int) -> str:
    return f"section-{index + 1}"


def section_html(section: Section, index: int) -> str:
    parts = [f'<section id="{_anchor(index)}"><h2>{escape(section.title)}</h2>']
    if section.how_to_read:
        parts.append(f'<p class="how">How to read this: {escape(section.how_to_read)}</p>')
    if section.html:
        parts.append(section.html)
    if section.images:
        layout = "figures pair" if len(section.images) == 2 else "figures"  # two figures side by side
        parts.append(f'<div class="{layout}">' + "".join(image_html(p) for p in section.images) + "</div>")
    if section.table:
        parts.append(table_html(section.table))
    parts.append("</section>")
    return "\n".join(parts)


def render_report(title: str, summary: Mapping[str, Any], sections: Sequence[Section],
                  details: Mapping[str, Any] | None = None, subtitle: str | None = None,
                  definitions: Mapping[str, Any] | None = None) -> str:
    """The report as one HTML string (see the module docstring for the arguments)."""
    created = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{escape(title)}</title><style>{CSS}</style></head><body>",
             f"<header><h1>{escape(title)}</h1>"]
    if subtitle:
        parts.append(f'<p class="subtitle">{escape(subtitle)}</p>')
    parts.append("</header>")
    if len(sections) > 2:
        parts.append("<nav>" + "".join(f'<a href="#{_anchor(i)}">{escape(s.title)}</a>' for i, s in enumerate(sections))
                     + "</nav>")
    if summary:
        parts.append('<section><div class="cards">' + "".join(_card(k, v) for k, v in summary.items()) + "</div>")
        if any(isinstance(v, tuple) or (isinstance(v, Mapping) and v.get("ci95")) for v in summary.values()):
            parts.append('<p class="how">95% CI: the range of values compatible with these cases; a wide range '
                         "means the figure rests on few cases.</p>")
        parts.append("</section>")
    parts += [section_html(section, i) for i, section in enumerate(sections)]
    if definitions:  # what each figure means, as metrics.json states it
        parts.append(section_html(Section("Definitions", table=[{"figure": k, "definition": str(v)} for k, v in definitions.items()],
                                          how_to_read="How each figure above is computed (the same text as metrics.json's definitions)."),
                                  len(sections)))
    if details:  # provenance for engineers, after the findings
        rows = "".join(f"<tr><td>{escape(key)}</td><td>{escape(format_value(value))}</td></tr>"
                       for key, value in details.items())
        parts.append(f'<section><h2>About this evaluation</h2><table class="details"><tbody>{rows}</tbody></table></section>')
    parts.append(f"<footer>medsight {escape(medsight.__version__)} · {created}</footer></body></html>")
    return "\n".join(parts) + "\n"


def write_report(path: str | Path, title: str, summary: Mapping[str, Any], sections: Sequence[Section],
                 details: Mapping[str, Any] | None = None, subtitle: str | None = None,
                 definitions: Mapping[str, Any] | None = None) -> Path:
    """Write a self-contained HTML report atomically and return its path."""
    text = render_report(title, summary, sections, details, subtitle, definitions)

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)

    path = Path(path)
    atomic_write(path, write)
    return path


def append_sections(path: str | Path, sections: Sequence[Section]) -> Path:
    """Add sections to a written report, after its own and before the footer (for facts every task reports)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    at = text.rfind("<footer>")
    if not sections or at < 0:
        return path
    first = text.count('<section id="section-')
    added = "\n".join(section_html(s, first + i) for i, s in enumerate(sections)) + "\n"

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text[:at] + added + text[at:])

    atomic_write(path, write)
    return path
