"""The functions behind the command line, callable from Python and tests (the CLI only parses arguments).

Nothing inside medsight imports this module: it is the facade over the library below it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Sequence

from medsight.config import TrainConfig
from medsight.dicom.outputs import predict_with_results
from medsight.errors import MedsightError
from medsight.evaluation.compare import compare_runs
from medsight.evaluation.compare_report import terminal_table, write_compare_page
from medsight.evaluation.ensemble import evaluate_ensemble as run_ensemble
from medsight.evaluation.folders import evaluate_folders as run_folders
from medsight.evaluation.runs import evaluate_run
from medsight.inference.predictor import Predictor
from medsight.io import formats
from medsight.io.dicom_series import SeriesRule, describe_study, is_study
from medsight.models import get_entry, list_models
from medsight.run import RunFolder, load_run
from medsight.sharing.card import write_card
from medsight.sharing.pack import pack_run
from medsight.tasks.base import Task
from medsight.tasks.pretraining.task import pretext_task
from medsight.tasks.registry import get_task
from medsight.tracking import TRACKING_FILE, after_evaluate, open_trackers, parse_track
from medsight.training.distributed import DistContext
from medsight.training.loop import fit
from medsight.training.transfer import init_weights_path

__all__ = ["card", "check", "compare", "echo", "evaluate", "evaluate_ensemble", "evaluate_folders", "load_run",
           "models", "pack", "plan", "predict", "pretrain", "read_dataset", "run_info", "train"]


def echo(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def read_dataset(data: str | Path, seed: int = 0, fold: int = 0) -> tuple[type[Task], Any]:
    """Recognise the format of data and read it: (task class, dataset)."""
    dataset = formats.read_dataset(data, seed=seed, fold=fold)
    return get_task(dataset.task), dataset


def check(data: str | Path, series: str | None = None) -> dict[str, Any]:
    """Validate a data set and describe it (format, task, cases, classes, shapes, spacing); a DICOM tree: its
    series and the one that would be used."""
    if is_study(Path(data), with_volume=True):
        return describe_study(data, SeriesRule(uid=series))
    _, dataset = read_dataset(data)
    validate = getattr(dataset, "validate", None)
    if callable(validate):
        validate()  # reads every file, so a corrupt one is found now rather than mid-training
    return dataset.summary()


def plan(data: str | Path, out: str | Path, seed: int = 0, fold: int = 0) -> dict[str, Any]:
    """Fingerprint the data set and write RUN/plan.json."""
    task_cls, dataset = read_dataset(data, seed, fold)
    result = task_cls.make_plan(dataset)
    run = RunFolder(out)
    run.path.mkdir(parents=True, exist_ok=True)
    run.save_plan(result)
    return result


def train(data: str | Path | None, out: str | Path, model: str | None = None, epochs: int | None = None,
          minutes: float | None = None, fold: int = 0, seed: int = 0, resume: bool = False, balance: str = "none",
          learning_rate: float | None = None, batch_size: int | None = None,
          operating_point: str = "balanced_accuracy", init: str | Path | None = None, freeze: str = "none",
          init_lr_scale: float = 0.1, pretext: bool = False, track: Sequence[str] = ()) -> dict[str, Any]:
    """Plan (when plan.json is missing) and train; --resume continues from RUN/checkpoint.pt.

    track: 'mlflow:URI' / 'tensorboard:DIR' targets (see medsight.tracking); a resume continues the run's own.

    init: a run folder or .safetensors file whose tensors of matching name and shape start the model.
    pretext: self-supervised pre-training on the images instead (see medsight.tasks.pretraining).
    """
    specs = track_specs(track)  # a wrong --track fails before any work
    run = RunFolder(out)
    if resume and data is not None and not run.config_path.is_file():
        resume = False  # killed before the run folder was set up: there is nothing to continue, so start it
    if resume:
        if not run.config_path.is_file():
            raise MedsightError(run.path, "cannot resume: not a run folder (no config.json); give DATA to start it")
        config = run.load_config()
        task_cls, dataset = read_dataset(data or config.data, config.seed, config.fold)
        result_plan = run.load_plan()
        pretext = bool(config.extra.get("pretrain"))
    else:
        if data is None:
            raise MedsightError(None, "train needs a DATA folder or file")
        if run.checkpoint_path.exists() or run.weights_path.exists():
            raise MedsightError(run.path, "already holds a trained run; use --resume to continue it or another --out")
        if init is not None:
            init_weights_path(init)  # a wrong --init fails before any work
            init = str(Path(init).resolve())
        task_cls, dataset = read_dataset(data, seed, fold)
        is_main = DistContext.from_env().is_main
        if run.plan_path.is_file():
            result_plan = run.load_plan()
            if result_plan.get("task") != task_cls.name:
                raise MedsightError(run.plan_path, f"is a {result_plan.get('task')} plan but {data} is a {task_cls.name} data set")
        else:
            result_plan = task_cls.make_plan(dataset)
            if is_main:
                run.path.mkdir(parents=True, exist_ok=True)
                run.save_plan(result_plan)
        config = TrainConfig(
            task=task_cls.name, data=str(Path(data).resolve()), model=model or result_plan["model"], epochs=epochs,
            minutes=minutes, seed=seed, fold=fold, balance=balance, learning_rate=learning_rate,
            batch_size=batch_size, operating_point=operating_point, init=init, freeze=freeze,
            init_lr_scale=init_lr_scale, extra={"pretrain": pretext_task(task_cls).objective} if pretext else {},
        )
        get_entry(config.model, task_cls.name)  # unknown model names fail before any work
        if is_main:
            config.save(run.config_path)
            run.save_dataset_info(dataset.info())
    task = (pretext_task(task_cls) if pretext else task_cls)(result_plan, run_info(dataset))
    trackers = training_trackers(run.path, specs, resume)
    try:
        summary = fit(task, dataset, run, config, resume=resume, echo=echo, callbacks=trackers)
    except BaseException as exc:  # the tracking run says how the training ended: FAILED, or KILLED by Ctrl-C
        for tracker in trackers:
            tracker.close("FAILED" if isinstance(exc, Exception) else "KILLED")
        raise
    for tracker in trackers:
        tracker.close()
    return summary


def training_trackers(run_path: Path, specs: Sequence[Any], resume: bool) -> list[Any]:
    """Rank 0's trackers for a training run: --track targets, and on --resume those of RUN/tracking.json."""
    if not DistContext.from_env().is_main or not (specs or (resume and (run_path / TRACKING_FILE).is_file())):
        return []  # nothing tracked: the optional packages are never imported
    return open_trackers(run_path, specs, resume)


def track_specs(track: Sequence[str]) -> list[Any]:
    return [parse_track(value) for value in track]


def pretrain(data: str | Path | None, out: str | Path, model: str | None = None, epochs: int | None = None,
             minutes: float | None = None, seed: int = 0, resume: bool = False, batch_size: int | None = None,
             learning_rate: float | None = None) -> dict[str, Any]:
    """Self-supervised pre-training on DATA's images into a run folder that `train --init` accepts."""
    return train(data, out, model=model, epochs=epochs, minutes=minutes, seed=seed, resume=resume,
                 batch_size=batch_size, learning_rate=learning_rate, operating_point="argmax", pretext=True)


def run_info(dataset) -> dict[str, Any]:
    """What a task object is told about its data set: dataset.json without the split lists."""
    info = dataset.info()
    info.pop("splits", None)
    return info


def evaluate(run_path: str | Path, data: str | Path | None = None, split: str = "test",
             nsd_tolerance: float | Sequence[float] | None = None) -> dict[str, Any]:
    """Evaluate a run on a split of its data set -> RUN/eval/<split>/metrics.json and report.html.

    nsd_tolerance (segmentation): NSD tolerance in mm, one number or one per foreground class, instead of the
    plan's ``evaluation.nsd_tolerance_mm``.
    """
    result = evaluate_run(run_path, data, split, nsd_tolerance)
    run = RunFolder(run_path)
    if (run.path / TRACKING_FILE).is_file():  # a tracked run: its figures join the same tracking run
        after_evaluate(run.path, split, result, run.eval_dir(split))
    return result


def evaluate_ensemble(runs: Sequence[str | Path], data: str | Path | None = None, split: str = "test",
                      out: str | Path | None = None, nsd_tolerance: float | Sequence[float] | None = None) -> dict[str, Any]:
    """Several runs of one task on one split, their probabilities averaged; each member's metrics beside."""
    return run_ensemble(runs, data, split, out, nsd_tolerance)


def evaluate_folders(pred: str | Path, ref: str | Path, out: str | Path | None = None,
                     nsd_tolerance: float | Sequence[float] | None = None) -> dict[str, Any]:
    """Segmentation metrics from a folder of predictions and a folder of references, without a model."""
    return run_folders(Path(pred), Path(ref), Path(out) if out else Path(pred) / "eval", nsd_tolerance)


def predict(runs: Sequence[str | Path], inputs: Sequence[str | Path], out: str | Path, explain: bool = False,
            engine: str = "torch", fmt: str = "nifti", series: str | None = None,
            codes: str | Path | None = None) -> list[dict[str, Any]]:
    """Predict files or folders with one run, or an ensemble of several runs of the same task.

    fmt "dicom-seg" / "dicom-sr" also writes DICOM results (OUT/dicom/) for DICOM inputs; series picks a
    study's series by UID; codes is a JSON file mapping class names to coded concepts.
    """
    predictor = Predictor([Path(r) for r in runs], engine=engine)
    return predict_with_results(predictor, [Path(i) for i in inputs], Path(out), explain=explain, fmt=fmt,
                                series=series, codes_file=codes)


def models(task: str | None = None) -> list[dict[str, Any]]:
    return [{"name": e.name, "task": e.task, "dims": list(e.spatial_dims), "description": e.description}
            for e in list_models(task)]


def compare(runs: Sequence[str | Path], split: str = "test", out: str | Path = "compare.html") -> dict[str, Any]:
    """Runs side by side: differing settings, figures with CIs, paired bootstrap differences, seed/fold groups."""
    result = compare_runs(runs, split)
    return {**result, "table": terminal_table(result), "page": str(write_compare_page(result, out))}


def card(run: str | Path, split: str = "test", out: str | Path | None = None) -> Path:
    """RUN/MODEL_CARD.md in the Hugging Face model-card format, from the run folder and its evaluation."""
    return write_card(run, split, out)


def pack(run: str | Path, out: str | Path | None = None, monai_bundle: bool = False) -> Path:
    """One zip of what predict, serve and train --init need, with a sha256 manifest checked on opening."""
    return pack_run(run, out, monai_bundle)
