"""`medsight demo`: make a synthetic data set, train, evaluate and report, with no data and no network."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from medsight import api
from medsight.api import echo
from medsight.synthetic.classification import make_classification_npz
from medsight.synthetic.detection import make_detection_dataset
from medsight.synthetic.segmentation import make_segmentation_dataset

# Minutes of training per task when --minutes is not given: the whole default demo stays within a few minutes.
DEFAULT_MINUTES = {"classification": 1.0, "segmentation": 1.5, "detection": 1.5}


def _classification_data(root: Path) -> list[tuple[str, Path]]:
    return [("classification", make_classification_npz(root / "synthetic_lesions.npz", n_train=800, n_val=200, n_test=300))]


def _segmentation_data(root: Path) -> list[tuple[str, Path]]:
    return [("segmentation_2d", make_segmentation_dataset(root / "shapes2d", spatial_dims=2, num_cases=40, seed=0)),
            ("segmentation_3d", make_segmentation_dataset(root / "shapes3d", spatial_dims=3, num_cases=24, seed=1))]


def _detection_data(root: Path) -> list[tuple[str, Path]]:
    return [("detection_2d", make_detection_dataset(root / "blobs2d", spatial_dims=2, seed=0)),
            ("detection_3d", make_detection_dataset(root / "nodules3d", spatial_dims=3, seed=1))]


DEMOS: dict[str, Callable[[Path], list[tuple[str, Path]]]] = {
    "classification": _classification_data,
    "segmentation": _segmentation_data,
    "detection": _detection_data,
}


def run_demo(task: str = "all", out: str | Path = "medsight-demo", minutes: float | None = None) -> Path:
    """Run the demo for one task or all; returns the report (an index page when several runs were made)."""
    out = Path(out)
    tasks = list(DEMOS) if task == "all" else [task]
    reports: list[tuple[str, Path]] = []
    for name in tasks:
        try:
            datasets = DEMOS[name](out / "data")
        except ImportError as exc:
            echo(f"demo: the {name} task is not available here ({exc})")
            continue
        budget = (minutes if minutes is not None else DEFAULT_MINUTES[name]) / len(datasets)
        for run_name, data in datasets:
            run = out / run_name
            if (run / "model.safetensors").exists():
                echo(f"demo: {run} is already trained; evaluating it again")
            else:
                started = time.perf_counter()
                echo(f"demo: training {run_name} on {data} for about {budget:.1f} min")
                api.train(data, run, minutes=budget)
                echo(f"demo: trained {run_name} in {time.perf_counter() - started:.0f} s")
            result = api.evaluate(run, split="test")
            headline = ", ".join(f"{k} {v:.3f}" for k, v in result["metrics"].items() if isinstance(v, float))
            echo(f"demo: {run_name} test metrics: {headline}")
            reports.append((run_name, Path(result["report"])))
    if not reports:
        raise SystemExit("medsight: no demo could run")
    if len(reports) == 1:
        return reports[0][1]
    return write_index(out / "index.html", reports)


def write_index(path: Path, reports: list[tuple[str, Path]]) -> Path:
    """A page linking the reports of every demo run."""
    import html
    import os

    items = "\n".join(f'<li><a href="{html.escape(os.path.relpath(report, path.parent))}">{html.escape(name)}</a></li>'
                      for name, report in reports)
    path.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>medsight demo</title></head>"
                    f"<body style='font-family:sans-serif;max-width:40em;margin:2em auto'><h1>medsight demo</h1>"
                    f"<p>Reports of the runs trained on synthetic data:</p><ul>{items}</ul></body></html>\n", encoding="utf-8")
    return path
