"""The terminal table and the HTML page of `medsight compare` (see medsight.evaluation.compare)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Sequence

from medsight.report.html import Section, metric_label, write_report


def _interval(value: Any, ci: Any, signed: bool = False) -> str:
    if not isinstance(value, (int, float)):
        return "n/a"
    text = f"{value:+.3f}" if signed else f"{value:.3f}"
    if ci and None not in ci:
        text += f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if signed else f" [{ci[0]:.3f}, {ci[1]:.3f}]"
    return text


def _text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()
    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def settings_rows(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["run", *result["differing"]]
    return header, [[r.name, *(str(r.settings.get(k)) for k in result["differing"])] for r in result["runs"]]


def figure_rows(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["run", "epochs", "cases", *result["metrics"]]
    rows = [[r.name, str(r.extra.get("epochs", "?")), str(r.num_cases),
             *(_interval(r.metrics.get(m), r.ci95.get(m)) for m in result["metrics"])] for r in result["runs"]]
    return header, rows


def difference_names(result: dict[str, Any]) -> list[str]:
    names: list[str] = []
    for found in result["differences"].values():
        names += [m for m in found if m not in names]
    return names


def _difference_cell(entry: dict[str, Any] | None) -> str:
    if not entry or entry.get("share_b_better") is None:
        return "n/a"
    return f"{_interval(entry['difference'], entry['ci95'], signed=True)} B>A {100 * entry['share_b_better']:.0f}%"


def difference_rows(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    names = difference_names(result)
    header = ["run", *(f"{m} (B-A)" for m in names)]
    rows = [[run, *(_difference_cell(d.get(m)) for m in names)] for run, d in result["differences"].items()]
    return header, rows


def terminal_table(result: dict[str, Any]) -> str:
    """The comparison as plain text for the console."""
    parts = []
    if result["differing"]:
        parts += ["settings that differ", _text_table(*settings_rows(result)), ""]
    else:
        parts += ["no setting differs between these runs", ""]
    parts += [f"figures on the {result['split']} split, 95% CI", _text_table(*figure_rows(result)), ""]
    if result["differences"]:
        cases = max(entry["cases"] for found in result["differences"].values() for entry in found.values())
        parts += [f"paired differences against {result['reference']} (B - A on the same {cases} cases, "
                  f"{result['n_boot']} paired bootstrap resamples; B>A: share of resamples where B is better"
                  + ("; segmentation: means of the per-case figures" if result["task"] == "segmentation" else "") + ")",
                  _text_table(*difference_rows(result)), ""]
    elif result["task"] == "detection":
        parts += ["(no paired differences for detection: its evaluation keeps no per-case figures)", ""]
    if result["groups"]:
        header = ["group", "runs", *(f"{m} mean±sd" for m in result["metrics"])]
        rows = [[g["group"], str(g["runs"]), *(_mean_sd(g, m) for m in result["metrics"])] for g in result["groups"]]
        parts += ["groups (runs that differ only in seed or fold)", _text_table(header, rows), ""]
    return "\n".join(parts).rstrip() + "\n"


def _mean_sd(group: dict[str, Any], metric: str) -> str:
    mean, sd = group.get(metric), group.get(f"{metric} sd")
    if mean is None:
        return "n/a"
    return f"{mean:.3f}" + (f" ± {sd:.3f}" if sd is not None else "")


def forest_plot(entries: Sequence[tuple[str, float, Any]], path: Path, title: str, colours: dict[str, str],
                zero_line: bool = False) -> Path:
    """One row per (label, value, [low, high]): a point and its interval, in the run's own colour."""
    from medsight.report.plots import _figure, _save

    fig, axes = _figure(6.0, 0.45 * len(entries) + 1.2)
    ax = axes[0, 0]
    for row, (label, value, ci) in enumerate(reversed(entries)):
        colour = colours.get(label, "#1d2733")
        if ci and None not in ci:
            ax.plot(ci, [row, row], color=colour, linewidth=2)
        ax.plot([value], [row], "o", color=colour)
    ax.set_yticks(range(len(entries)), [label for label, _, _ in reversed(entries)])
    if zero_line:
        ax.axvline(0.0, color="#5b6773", linestyle="--", linewidth=1)
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def write_compare_page(result: dict[str, Any], out: str | Path) -> Path:
    """compare.html: settings that differ, figures with intervals, paired differences, groups, with plots."""
    from medsight.report.plots import _colour

    runs = result["runs"]
    colours = {r.name: _colour(i) for i, r in enumerate(runs)}  # a run keeps its colour in every plot
    sections = []
    with tempfile.TemporaryDirectory() as plots:  # the page embeds its figures, so they need not stay
        plots_dir = Path(plots)
        header, rows = settings_rows(result)
        sections.append(Section("Settings that differ", table=[header, *rows] if result["differing"] else None,
                                html=None if result["differing"] else "<p>No setting differs between these runs.</p>"))
        header, rows = figure_rows(result)
        images = [forest_plot([(r.name, r.metrics[m], r.ci95.get(m)) for r in runs if isinstance(r.metrics.get(m), (int, float))],
                              plots_dir / f"figure_{m}.png", metric_label(m), colours) for m in result["metrics"][:4]]
        sections.append(Section(f"Figures on the {result['split']} split", table=[header, *rows], images=images,
                                how_to_read="each point is a run's figure, its line the 95% bootstrap interval over "
                                            "the test cases"))
        if result["differences"]:
            header, rows = difference_rows(result)
            names = difference_names(result)
            images = [forest_plot([(run, d[m]["difference"], d[m]["ci95"]) for run, d in result["differences"].items() if m in d],
                                  plots_dir / f"difference_{m}.png", f"{metric_label(m)}: B - {result['reference']}",
                                  colours, zero_line=True) for m in names]
            sections.append(Section(
                f"Paired differences against {result['reference']}", table=[header, *rows], images=images,
                how_to_read=f"B - A on the same test cases, {result['n_boot']} paired bootstrap resamples (each "
                            "draws the same cases for both runs); an interval that leaves out 0 means B and A differ "
                            "beyond what these cases can explain by chance; B>A is the share of resamples where B "
                            "is better"))
        if result["groups"]:
            sections.append(Section("Groups of seeds and folds", table=result["groups"],
                                    how_to_read="runs whose settings differ only in seed or fold, with the mean and "
                                                "standard deviation of their figures"))
        details = {f"run {i + 1}": str(r.path) for i, r in enumerate(runs)}
        return write_report(out, f"Comparison of {len(runs)} {result['task']} runs", {}, sections, details=details,
                            subtitle=f"{result['split']} split · reference {result['reference']}")
