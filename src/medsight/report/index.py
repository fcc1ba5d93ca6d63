"""An index page of several runs (the demo's): one table row per run, with its headline test figure, a picture
and a link to its report."""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from pathlib import Path

from medsight.report.html import METRIC_LABELS


@dataclass(frozen=True)
class IndexRow:
    name: str
    what: str
    metric: str  # metrics.json key of the headline figure
    value: float | None  # None: the run did not produce the figure
    report: Path
    picture: Path | None  # a picture from the report's folder (ROC curve, overlay, boxes)
    seconds: float | None  # training and evaluation in this command; None for a run made earlier


def metric_label(metric: str) -> str:
    return METRIC_LABELS.get(metric, (metric, ""))[0]


def write_index(path: Path, rows: list[IndexRow]) -> Path:
    """index.html beside the runs: a table of the runs' headline test figures, each with its picture and report."""
    path = Path(path)

    def link(target: Path) -> str:
        return html.escape(os.path.relpath(target, path.parent).replace(os.sep, "/"))

    lines = []
    for row in rows:
        value = "not computed" if row.value is None else f"{row.value:.3f}"
        picture = (f'<a href="{link(row.picture)}"><img src="{link(row.picture)}" alt="{html.escape(row.name)}" '
                   f'style="height:120px"></a>' if row.picture is not None else "no picture")
        seconds = "" if row.seconds is None else f"{row.seconds:.0f} s"
        lines.append(f"<tr><td><a href='{link(row.report)}'>{html.escape(row.name)}</a></td>"
                     f"<td>{html.escape(row.what)}</td><td>{html.escape(metric_label(row.metric))}</td>"
                     f"<td class='figure'>{value}</td><td>{picture}</td><td>{seconds}</td></tr>")
    style = ("body{font-family:sans-serif;max-width:64em;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border-bottom:1px solid #ccc;padding:.4em .6em;text-align:left;vertical-align:middle}"
             "td.figure{font-size:1.3em;font-weight:bold}")
    path.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>medsight demo</title>"
        f"<style>{style}</style></head><body><h1>medsight demo</h1>"
        "<p>Each run was trained on a synthetic data set that medsight made, and scored on its held-out test "
        "split; the name links the full report.</p><table><thead><tr><th>run</th><th>data</th><th>headline</th>"
        "<th>test figure</th><th>picture</th><th>train + evaluate</th></tr></thead><tbody>"
        + "".join(lines) + "</tbody></table></body></html>\n", encoding="utf-8")
    return path
