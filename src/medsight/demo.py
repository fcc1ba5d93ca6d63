"""`medsight demo`: make synthetic data sets, train, evaluate and report, with no data and no network.

Every run of the demo is a ``DemoRun``: how its data set is made, its share of the training minutes, and the
headline figure and the picture of its report that the index shows. The data sets are made so that each
task learns clearly within its budget on two CPU cores (benchmarks/demo/results.md has the figures).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable

from medsight import api
from medsight.api import echo
from medsight.report.index import IndexRow, write_index
from medsight.synthetic.classification import make_classification_npz
from medsight.synthetic.detection import make_blobs_2d, make_spheres_3d
from medsight.synthetic.fundus import make_fundus_folder
from medsight.synthetic.luna16 import make_luna16
from medsight.synthetic.segmentation import make_segmentation_dataset


@dataclass(frozen=True)
class DemoRun:
    name: str  # the run folder and the index row
    what: str  # one line for the index: the data and the question
    make: Callable[[Path], Path]  # writes the data set under this folder (or finds it made) and returns its path
    epochs: int  # training length when --minutes is not given
    minutes: float  # about what those epochs take on one idle core (measured: benchmarks/demo/results.md)
    headline: str  # the key in metrics.json that the index shows
    picture: str  # glob, in the report's folder, of the picture the index shows (the first match)
    model: str | None = None  # the registry model, where the plan's default is not the one for this budget
    learning_rate: float | None = None  # where the plan's default leaves the result loose after these epochs


def _once(make: Callable[[Path], Any], marker: str) -> Callable[[Path], Path]:
    """make(folder), unless the folder already holds marker (a re-run of the demo keeps its data)."""
    def made(folder: Path) -> Path:
        if not (folder / marker).exists():
            make(folder)
        return folder
    return made


def _npz(folder: Path) -> Path:
    """The classification set: the data is the .npz file itself."""
    path = folder / "lesions.npz"
    if not path.is_file():
        make_classification_npz(path, n_train=800, n_val=200, n_test=300, lesion_fraction=0.3, contrast=(0.25, 0.5),
                                radius=(1.5, 3.0))
    return path


# The default runs train for about five minutes in all on an idle core; ct-nodule is opt-in.
DEMOS: dict[str, list[DemoRun]] = {
    "classification": [
        DemoRun("classification", "28 px grey images: a small bright lesion or none (30% lesion)",
                _npz, 6, 1.1, "auc", "plots/roc.png")],
    "segmentation": [
        DemoRun("segmentation_2d", "64 px images: a bright ellipse and a dimmer box to outline",
                _once(partial(make_segmentation_dataset, spatial_dims=2, num_cases=40, seed=0), "dataset.json"),
                12, 0.9, "dice", "plots/overlay_*.png"),
        DemoRun("segmentation_3d", "32^3 volumes (0.9 x 0.9 x 1.2 mm): the same shapes in 3D",
                _once(partial(make_segmentation_dataset, spatial_dims=3, num_cases=24, seed=1), "dataset.json"),
                12, 1.5, "dice", "plots/overlay_*.png",
                # MONAI's residual UNet: about a ninth of dynunet_lite's FLOPs a step, so it learns in the minute
                model="unet")],
    "detection": [
        DemoRun("detection_2d", "96 px images: 1-4 discs and rings to box and name",
                _once(partial(make_blobs_2d, seed=0), "annotations.json"), 15, 0.4, "map_50", "plots/overlay_*.png"),
        DemoRun("detection_3d", "48^3 volumes: 1-3 nodule-like spheres of 5-9 voxels radius to box",
                _once(partial(make_spheres_3d, seed=1, radius=(5.0, 9.0), contrast=(0.4, 0.6)), "dataset.json"),
                30, 1.6, "map_50", "plots/overlay_*.png",
                # at 1e-3 the 3D boxes are still loose after these epochs (IoU near 0.5), as in the learning tests
                learning_rate=3e-3)],
    "fundus": [
        DemoRun("fundus", "64 px colour fundus photographs: exudate / haemorrhage spots or none",
                _once(partial(make_fundus_folder, seed=0), "test"), 8, 0.4, "auc", "plots/roc.png")],
    "ct-nodule": [
        DemoRun("ct_nodule", "LUNA16-layout CT (.mhd, HU, anisotropic mm, vessels): nodules in mm, LUNA16 CPM",
                _once(partial(make_luna16, seed=3, num_scans=30, shape=(24, 64, 64), spacing_xyz=(1.4, 1.4, 2.5),
                              diameters_mm=(8.0, 20.0), tubes=3), "annotations.csv"),
                12, 3.0, "cpm", "plots/overlay_*.png")],
}
DEFAULT_TASKS = ("classification", "segmentation", "detection", "fundus")  # about five minutes of training


def run_demo(task: str = "all", out: str | Path = "medsight-demo", minutes: float | None = None) -> Path:
    """Run the demo for one task or the default ones; returns the report (the index page when several ran).

    Each run trains for its fixed number of epochs, so its figures do not depend on how busy the machine is
    (a shared machine only takes longer); minutes instead gives each task that training budget in minutes
    (shared by its runs), as `medsight train --minutes` does.
    """
    out = Path(out)
    tasks = list(DEFAULT_TASKS) if task == "all" else [task]
    rows: list[IndexRow] = []
    for name in tasks:
        runs = DEMOS[name]
        for demo in runs:
            rows.append(_run_one(demo, out, None if minutes is None else minutes / len(runs)))
    previous = [row for row in _earlier_rows(out) if row.name not in {r.name for r in rows}]
    if len(rows) == 1 and not previous:
        return rows[0].report
    return write_index(out / "index.html", rows + previous)


def _run_one(demo: DemoRun, out: Path, budget: float | None) -> IndexRow:
    data = demo.make(out / "data" / demo.name)
    run = out / demo.name
    started = time.perf_counter()
    if (run / "model.safetensors").exists():
        echo(f"demo: {run} is already trained; evaluating it again")
    else:
        length = (f"{demo.epochs} epochs (about {demo.minutes:g} min on an idle core)" if budget is None
                  else f"about {budget:.2f} min")
        echo(f"demo: training {demo.name} ({demo.what}) on {data} for {length}")
        if budget is None:
            api.train(data, run, model=demo.model, epochs=demo.epochs, learning_rate=demo.learning_rate)
        else:
            api.train(data, run, model=demo.model, minutes=budget, learning_rate=demo.learning_rate)
        echo(f"demo: trained {demo.name} in {time.perf_counter() - started:.0f} s")
    result = api.evaluate(run, split="test")
    figures = {k: v for k, v in result["metrics"].items() if isinstance(v, float) and math.isfinite(v)}
    echo(f"demo: {demo.name} test metrics: " + ", ".join(f"{k} {v:.3f}" for k, v in figures.items()))
    report = Path(result["report"])
    pictures = sorted(report.parent.glob(demo.picture))
    return IndexRow(demo.name, demo.what, demo.headline, headline_value(result["metrics"], demo.headline),
                    report, pictures[0] if pictures else None, time.perf_counter() - started)


def headline_value(metrics: dict[str, Any], key: str) -> float | None:
    """metrics[key] as a number (a {"value": v} entry too); None when missing or not finite."""
    value = metrics.get(key)
    if isinstance(value, dict):
        value = value.get("value")
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _earlier_rows(out: Path) -> list[IndexRow]:
    """Rows for the demo runs already in out (from an earlier `medsight demo`), so the index lists them all."""
    import json

    rows = []
    for name, runs in DEMOS.items():
        for demo in runs:
            metrics_path = out / demo.name / "eval" / "test" / "metrics.json"
            if not metrics_path.is_file():
                continue
            metrics = json.loads(metrics_path.read_text(encoding="utf-8")).get("metrics", {})
            pictures = sorted(metrics_path.parent.glob(demo.picture))
            rows.append(IndexRow(demo.name, demo.what, demo.headline, headline_value(metrics, demo.headline),
                                 metrics_path.parent / "report.html", pictures[0] if pictures else None, None))
    return rows
