"""The functions behind the command line, callable from Python and tests (the CLI only parses arguments).

Nothing inside medsight imports this module: it is the facade over the library below it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Sequence

from medsight.config import TrainConfig
from medsight.data.splits import planning_view, save_generated
from medsight.dicom.outputs import predict_with_results
from medsight.errors import MedsightError
from medsight.evaluation.compare import compare_runs
from medsight.evaluation.compare_report import terminal_table, write_compare_page
from medsight.evaluation.crossval import crossval as run_crossval
from medsight.evaluation.ensemble import evaluate_ensemble as run_ensemble
from medsight.evaluation.folders import evaluate_folders as run_folders
from medsight.evaluation.leaks import split_leaks
from medsight.evaluation.runs import evaluate_run
from medsight.inference.predictor import Predictor
from medsight.io import formats
from medsight.io.dicom_series import SeriesRule, describe_study, is_study
from medsight.models import get_entry, list_models
from medsight.run import RunFolder, load_run
from medsight.sharing.card import write_card
from medsight.sharing.pack import pack_run
from medsight.tasks.base import Task
from medsight.tasks.plan_target import plan_target
from medsight.tasks.pretraining.task import pretext_task
from medsight.tasks.registry import get_task
from medsight.device import resolve_device
from medsight.tracking import TRACKING_FILE, after_evaluate, open_trackers, parse_track
from medsight.training.distributed import DistContext
from medsight.training.loop import fit
from medsight.training import race as racing
from medsight.training.transfer import init_weights_path

__all__ = ["card", "check", "compare", "crossval", "echo", "evaluate", "evaluate_ensemble", "evaluate_folders",
           "load_run", "models", "pack", "plan", "predict", "pretrain", "read_dataset", "run_info", "train"]


def echo(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def read_dataset(data: str | Path, seed: int = 0, fold: int = 0) -> tuple[type[Task], Any]:
    """Recognise the format of data and read it: (task class, dataset).

    The splits depend on the data alone (medsight.data.splits); seed is the run's and does not move them.
    """
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
    summary = dataset.summary()
    warnings = split_leaks(dataset)
    for line in warnings:
        echo(f"medsight: warning: {line}")
    warnings = list(summary.get("warnings", [])) + warnings  # the reader's own (mixed images, ...) first
    return {**summary, "warnings": warnings} if warnings else summary


def make_plan(task_cls: type[Task], dataset, device: str = "cpu") -> dict[str, Any]:
    """The task's plan for the device (--device), which it records under "planned_for"."""
    target = plan_target(device)
    result = task_cls.make_plan(dataset, target)
    result.setdefault("planned_for", target.record())
    return result


def plan(data: str | Path, out: str | Path, seed: int = 0, fold: int = 0, device: str = "auto", race: bool = False,
         minutes: float | None = None) -> dict[str, Any]:
    """Fingerprint the data set and write RUN/plan.json, for the device --device names.

    race: race the task's candidates as `train --minutes M` would (M: minutes, default RACE_MINUTES) and write
    the winner's configuration with the race's table; a `train --minutes M` with the same M, seed and fold then
    continues the winner from the race instead of starting over.
    """
    if minutes is not None and not race:
        raise MedsightError(None, "plan --minutes is the budget of a race: give --race too")
    task_cls, dataset = read_dataset(data, seed, fold)
    save_generated(dataset, echo)
    result = make_plan(task_cls, planning_view(dataset), device)  # every fold's training cases: folds share one plan
    run = RunFolder(out)
    run.path.mkdir(parents=True, exist_ok=True)
    if race:
        minutes = RACE_MINUTES if minutes is None else minutes
        config = TrainConfig(task=task_cls.name, data=str(Path(data).resolve()), model=result["model"], minutes=minutes,
                             seed=seed, fold=fold, device=device)
        outcome = racing.run_race(task_cls, dataset, run_info(dataset), run.path, result, config, minutes, echo)
        result = racing.winner_plan(result, outcome)
    run.save_plan(result)
    return result


RACE_MINUTES = 10.0  # `plan --race` without --minutes races as a 10-minute training would


def race_base(run: RunFolder, plan: dict[str, Any], minutes: float, seed: int, fold: int) -> dict[str, Any] | None:
    """The plan a `train --minutes` race starts from: the plan itself when it has not raced, the race's own base
    plan when it raced with the same budget, seed and fold (the race is then reused); None: no race."""
    raced = plan.get("race")
    if raced is False:
        return None
    if raced is None:
        return plan
    same = (raced.get("budget_minutes"), raced.get("seed"), raced.get("fold")) == (minutes, seed, fold)
    return racing.stored_base_plan(run.path) if same else None


def train(data: str | Path | None, out: str | Path, model: str | None = None, epochs: int | None = None,
          minutes: float | None = None, fold: int = 0, seed: int = 0, resume: bool = False, balance: str = "none",
          learning_rate: float | None = None, batch_size: int | None = None,
          operating_point: str = "balanced_accuracy", init: str | Path | None = None, freeze: str = "none",
          init_lr_scale: float = 0.1, pretext: bool = False, track: Sequence[str] = (), device: str = "auto",
          amp: str = "auto", workers: int = 0, deterministic: bool = False, race: bool = False) -> dict[str, Any]:
    """Plan (when plan.json is missing) and train; --resume continues from RUN/checkpoint.pt.

    race: with minutes and no model, race the task's candidates first (medsight.training.race) and train the
    winner for the rest of the budget; a plan with "race": false, or no candidates, trains the plan's model.

    device, workers: where this process trains and its data workers (a resume may change them);
    amp, deterministic: recorded in config.json with the run (a resume keeps the run's own).

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
        config = run.load_config().replace(device=device, num_workers=workers)
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
        is_main = DistContext.from_env(cuda=resolve_device(device, 0).type == "cuda").is_main
        if is_main:
            save_generated(dataset, echo)
        if run.plan_path.is_file():
            result_plan = run.load_plan()
            if result_plan.get("task") != task_cls.name:
                raise MedsightError(run.plan_path, f"is a {result_plan.get('task')} plan but {data} is a {task_cls.name} data set")
        else:
            result_plan = make_plan(task_cls, planning_view(dataset), device)  # every fold's cases: folds share one plan
            if is_main:
                run.path.mkdir(parents=True, exist_ok=True)
                run.save_plan(result_plan)
        config = TrainConfig(
            task=task_cls.name, data=str(Path(data).resolve()), model=model or result_plan["model"], epochs=epochs,
            minutes=minutes, seed=seed, fold=fold, balance=balance,
            learning_rate=learning_rate if learning_rate is not None else result_plan.get("learning_rate"),
            batch_size=batch_size, operating_point=operating_point, init=init, freeze=freeze,
            init_lr_scale=init_lr_scale, device=device, amp=amp, num_workers=workers, deterministic=deterministic,
            extra={"pretrain": pretext_task(task_cls).objective} if pretext else {},
        )
        get_entry(config.model, task_cls.name)  # unknown model names fail before any work
        base = race_base(run, result_plan, minutes, seed, fold) if race and minutes and not (model or epochs or pretext) else None
        if base is not None and len(racing.race_candidates(task_cls, base)) >= 2 and not DistContext.from_env().enabled:
            info = run_info(dataset)
            outcome = racing.run_race(task_cls, dataset, info, run.path, base, config, minutes, echo)
            trackers = training_trackers(run.path, specs, False)
            return racing.train_winner(task_cls, dataset, info, run.path, base, outcome, config, echo, trackers)
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
             learning_rate: float | None = None, **settings: Any) -> dict[str, Any]:
    """Self-supervised pre-training on DATA's images into a run folder that `train --init` accepts.

    settings: train's device, amp, workers, deterministic."""
    return train(data, out, model=model, epochs=epochs, minutes=minutes, seed=seed, resume=resume,
                 batch_size=batch_size, learning_rate=learning_rate, operating_point="argmax", pretext=True, **settings)


def run_info(dataset) -> dict[str, Any]:
    """What a task object is told about its data set: dataset.json without the split lists."""
    info = dataset.info()
    info.pop("splits", None)
    return info


def evaluate(run_path: str | Path, data: str | Path | None = None, split: str = "test",
             nsd_tolerance: float | Sequence[float] | None = None, device: str = "auto") -> dict[str, Any]:
    """Evaluate a run on a split of its data set -> RUN/eval/<split>/metrics.json and report.html.

    nsd_tolerance (segmentation): NSD tolerance in mm, one number or one per foreground class, instead of the
    plan's ``evaluation.nsd_tolerance_mm``.
    """
    result = evaluate_run(run_path, data, split, nsd_tolerance, device=device)
    run = RunFolder(run_path)
    if (run.path / TRACKING_FILE).is_file():  # a tracked run: its figures join the same tracking run
        after_evaluate(run.path, split, result, run.eval_dir(split))
    return result


def evaluate_ensemble(runs: Sequence[str | Path], data: str | Path | None = None, split: str = "test",
                      out: str | Path | None = None, nsd_tolerance: float | Sequence[float] | None = None,
                      device: str = "auto") -> dict[str, Any]:
    """Several runs of one task on one split, their probabilities averaged; each member's metrics beside."""
    return run_ensemble(runs, data, split, out, nsd_tolerance, device=device)


def crossval(data: str | Path, out: str | Path, folds: int = 5, minutes: float | None = None,
             epochs: int | None = None, model: str | None = None, parallel: int = 1, seed: int = 0) -> dict[str, Any]:
    """Train the folds from one plan, their out-of-fold metrics and their ensemble on test (evaluation.crossval)."""
    return run_crossval(data, out, folds=folds, minutes=minutes, epochs=epochs, model=model, parallel=parallel,
                        seed=seed, echo=echo)


def evaluate_folders(pred: str | Path, ref: str | Path, out: str | Path | None = None,
                     nsd_tolerance: float | Sequence[float] | None = None) -> dict[str, Any]:
    """Segmentation metrics from a folder of predictions and a folder of references, without a model."""
    return run_folders(Path(pred), Path(ref), Path(out) if out else Path(pred) / "eval", nsd_tolerance)


def predict(runs: Sequence[str | Path], inputs: Sequence[str | Path], out: str | Path, explain: bool = False,
            engine: str = "torch", fmt: str = "nifti", series: str | None = None,
            codes: str | Path | None = None, device: str = "auto", shard: str | None = None, resume: bool = False,
            tta: str | None = None, overlap: float | None = None, batch: int | None = None) -> list[dict[str, Any]]:
    """Predict files or folders with one run, or an ensemble of several runs of the same task.

    fmt "dicom-seg" / "dicom-sr" also writes DICOM results (OUT/dicom/) for DICOM inputs; series picks a
    study's series by UID; codes is a JSON file mapping class names to coded concepts.
    shard "i/n": this job's share of the inputs; resume: skip what OUT/predictions.jsonl holds for these weights;
    tta, overlap, batch: test-time settings in place of the plan's.
    """
    predictor = Predictor([Path(r) for r in runs], engine=engine, device=device, tta=tta, overlap=overlap, batch=batch)
    return predict_with_results(predictor, [Path(i) for i in inputs], Path(out), explain=explain, fmt=fmt,
                                series=series, codes_file=codes, shard=shard, resume=resume)


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
