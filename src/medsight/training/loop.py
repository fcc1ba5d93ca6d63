"""The task-agnostic training loop: budget, schedule, validation, best epoch, log, checkpoints, resume, DDP."""

from __future__ import annotations

import csv
import io
import itertools
import math
import sys
import time
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn as nn

from medsight.config import TrainConfig
from medsight.data.dataset import TaskDataset
from medsight.data.ranks import rank_seed
from medsight.data.workers import in_workers
from medsight.errors import MedsightError
from medsight.jsonio import atomic_write
from medsight.models import get_entry
from medsight.run import RunFolder
from medsight.tasks.base import Task
from medsight.training.callbacks import TrainingCallback
from medsight.training.batch_norm import refresh_batch_norm
from medsight.training.checkpoint import load_checkpoint, save_checkpoint
from medsight.training.distributed import DistContext
from medsight.training.precision import Precision
from medsight.training.seeding import seed_everything, set_deterministic
from medsight.training.selection import EpochSelector, SelectionRule
from medsight.training.step_memory import step_guard
from medsight.training.transfer import prepare_transfer

GRAD_CLIP = 12.0  # as nnU-Net: guards against rare exploding steps without slowing normal ones
WARMUP_FRACTION = 1.0  # the first epoch warms the learning rate up linearly


def learning_rate(base: float, epoch: int, step: int, steps_per_epoch: int, planned_epochs: int) -> float:
    """Linear warm-up over the first epoch, then cosine decay to 1% of base by the last planned epoch.

    The first epoch does not depend on planned_epochs, so a --minutes budget can plan the rest after it.
    """
    progress_in_epoch = step / max(1, steps_per_epoch)
    if epoch == 0:
        return base * (0.1 + 0.9 * progress_in_epoch)
    t = (epoch - 1 + progress_in_epoch) / max(1, planned_epochs - 1)
    return base * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def epoch_figures(row: dict[str, Any]) -> str:
    """The figures of an epoch's log row for its progress line ("train_loss 0.41  dice 0.87").

    A figure that was not computed (a task that validates without a loss, a metric undefined on this
    validation split) is left out rather than printed as nan, which a reader takes for a broken run.
    """
    return "  ".join(f"{k} {v:.4g}" for k, v in row.items()
                     if k not in ("epoch", "seconds", "lr") and isinstance(v, float) and math.isfinite(v))


def write_log(path, rows: list[dict[str, Any]]) -> None:
    """Rewrite log.csv in full (atomically), columns: epoch, seconds, train_loss, val_loss, metrics..., lr."""
    columns = ["epoch", "seconds", "train_loss", "val_loss"]
    for row in rows:
        columns += [k for k in row if k not in columns and k != "lr"]
    columns.append("lr")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            handle.write(buffer.getvalue())

    atomic_write(path, write)


def in_step(batches: Iterable[Any], steps: int, ctx: DistContext) -> Iterator[Any]:
    """The batches, cut so that every DDP rank takes the same number of steps.

    A rank with one batch more than the others would wait forever in its extra gradient all-reduce.
    """
    if not ctx.enabled:
        yield from batches
    elif steps:
        yield from itertools.islice(batches, steps)
    else:  # an unsized iterable: the ranks agree before each step
        iterator = iter(batches)
        while True:
            batch = next(iterator, None)
            if ctx.min_int(int(batch is not None)) == 0:
                return
            yield batch


def remove_stale_temporaries(run: RunFolder) -> None:
    """Delete the half-written temporaries a killed process left behind (atomic_write's .NAME.*.tmp)."""
    if run.path.is_dir():
        for leftover in run.path.glob(".*.tmp"):
            leftover.unlink(missing_ok=True)


def averaged_weights(model: nn.Module, decay: float) -> torch.optim.swa_utils.AveragedModel | None:
    """An exponential moving average of the weights (and BatchNorm statistics), or None when decay is 0.

    The average is what is validated, chosen and saved: on small data sets it is much less noisy from epoch to
    epoch than the last step's weights, so the epoch picked on a small validation split is less of a lottery.
    """
    if not decay:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def slice_spent(stop_after: float | None, seconds: float, ctx: DistContext) -> bool:
    """Whether a slice of stop_after training seconds is over (one process only: DDP ranks never stop alone)."""
    return stop_after is not None and not ctx.enabled and seconds >= stop_after


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def validate(task: Task, model: nn.Module, kept: nn.Module, dataset: TaskDataset, val_idx: np.ndarray,
             ctx: DistContext) -> dict[str, Any]:
    """Validation metrics on every rank: each rank validates its share and the parts are reduced, for the tasks
    that can (shares_validation); otherwise rank 0 validates alone and broadcasts."""
    model.eval()
    kept.eval()
    if task.shares_validation and ctx.enabled:
        with torch.no_grad():
            part = task.validation_part(kept, dataset, val_idx, ctx.rank, ctx.world_size)
        return task.reduce_validation(ctx.gather(part))
    metrics = None
    if ctx.is_main:
        with torch.no_grad():
            metrics = task.validate(kept, dataset, val_idx)
    return ctx.broadcast(metrics)


def fit(task: Task, dataset: TaskDataset, run: RunFolder, config: TrainConfig, resume: bool = False,
        echo: Callable[[str], None] | None = None, callbacks: Sequence[TrainingCallback] = (),
        stop_after: float | None = None) -> dict[str, Any]:
    """Train task's model on dataset into run; returns a summary (best epoch and score, epochs, seconds).

    callbacks hear of the start, each epoch's log row and the end, on rank 0 only (see training.callbacks).
    stop_after: seconds of training after which fit returns, the epoch cut short there, validated and
    checkpointed, with the schedule still planned for the whole budget, so that a --resume continues it (a race's
    slice).
    """
    from medsight.device import resolve_device

    ctx = DistContext.from_env(cuda=resolve_device(config.device, 0).type == "cuda")
    callbacks = list(callbacks) if ctx.is_main else []
    echo = echo if echo is not None else (lambda line: print(line, file=sys.stderr, flush=True))
    say = echo if ctx.is_main else (lambda line: None)
    task.device = ctx.device(config.device)
    set_deterministic(config.deterministic, task.device)
    precision = Precision(config.amp, task.device)
    if task.device.type == "cuda":
        say(f"training on {task.device} ({torch.cuda.get_device_name(task.device)}), {precision.name}")
    seed_everything(config.seed)
    # rank 0 configures first: a task that preprocesses into a shared cache does it once, not racing itself
    if not ctx.is_main:
        ctx.barrier()
    task.configure(config, dataset)
    if ctx.is_main:
        ctx.barrier()
    model = task.build_model(config.model).to(task.device)

    # --init happens once, at the start; a resume from a checkpoint only rebuilds the frozen set and groups
    groups = prepare_transfer(model, config, run, resume and run.checkpoint_path.is_file(), ctx.is_main, say)
    base_lr = config.learning_rate if config.learning_rate is not None else get_entry(config.model).default_lr
    optimizer = task.optimizer(model, base_lr, config.weight_decay, groups)
    ema = averaged_weights(model, float(task.plan.get("ema_decay") or 0.0))
    kept = model if ema is None else ema.module  # what is validated and saved (the bare module, never the DDP wrapper)
    progress: dict[str, Any] = {
        "epoch": 0, "planned_epochs": config.epochs or int(task.plan.get("epochs", 10)),
        "best_score": -math.inf, "best_epoch": -1, "elapsed": 0.0, "log": [],
    }
    train_idx, val_idx = dataset.splits["train"], dataset.splits.get("val", np.array([], dtype=int))
    selector = EpochSelector(SelectionRule.from_plan(task.plan, len(val_idx)))
    if ctx.is_main:
        remove_stale_temporaries(run)
    if resume and run.checkpoint_path.is_file():
        checkpoint = load_checkpoint(run.checkpoint_path)
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        if ema is not None and "ema" in checkpoint:
            ema.load_state_dict(checkpoint["ema"])
        precision.load_state_dict(checkpoint.get("grad_scaler"))
        progress.update(checkpoint["progress"])
        if "selection" in checkpoint:
            selector.load_state_dict(checkpoint["selection"])
        else:  # a checkpoint from before the rule: its best so far stays the one to beat
            selector.best_epoch, selector.best_score = progress["best_epoch"], progress["best_score"]
        if progress["epoch"] < progress["planned_epochs"]:
            say(f"resuming {run.path} at epoch {progress['epoch'] + 1}/{progress['planned_epochs']}")
        else:
            say(f"resuming {run.path}: all {progress['planned_epochs']} epochs are done, finishing")
    elif resume:  # killed before the first checkpoint: nothing to lose, start over
        say(f"resuming {run.path}: no checkpoint yet, starting from the first epoch")
    for callback in callbacks:
        callback.on_train_start(run, config, task.plan, progress)
    if ctx.enabled:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[task.device] if task.device.type == "cuda" else None)

    if len(train_idx) == 0:
        raise MedsightError(dataset.path, "has no training cases")
    budget = None if config.minutes is None else config.minutes * 60.0

    stopped = False
    first_step = True
    while progress["epoch"] < progress["planned_epochs"]:
        if stop_after is not None and progress["elapsed"] >= stop_after:
            stopped = True
            break
        epoch, planned = progress["epoch"], progress["planned_epochs"]
        started = time.perf_counter()
        seed_everything(rank_seed(config.seed, epoch, ctx.rank))  # dropout: each rank its own stream
        model.train()
        batches = in_workers(task.train_batches(dataset, train_idx, epoch, config.seed, ctx.rank, ctx.world_size),
                             config.num_workers, task.device)
        steps = ctx.min_int(len(batches)) if hasattr(batches, "__len__") else 0
        losses, lr = [], base_lr
        for step, batch in enumerate(in_step(batches, steps, ctx)):
            if step and slice_spent(stop_after, progress["elapsed"] + time.perf_counter() - started, ctx):
                break  # a race's slice ends mid-epoch: candidates are compared after equal time, not equal epochs
            lr = learning_rate(base_lr, epoch, step, steps, planned)
            for group in optimizer.param_groups:
                group["lr"] = lr * group.get("lr_scale", 1.0)
            optimizer.zero_grad(set_to_none=True)
            guard = step_guard(first_step, task.device, run.path)  # one line, not a kill, when a step cannot fit
            first_step = False
            with precision.autocast(), guard:
                out = task.training_step(model, batch)
            guard.after_forward()
            loss = out["loss"].float()
            if not torch.isfinite(loss):
                raise MedsightError(run.path, f"training diverged at epoch {epoch + 1} (loss {loss.item()}); try a lower --lr")
            precision.backward(loss)
            precision.unscale(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
            precision.step(optimizer)
            if ema is not None:
                ema.update_parameters(_unwrap(model))
            losses.append(loss.item())
        local_loss = float(np.mean(losses)) if losses else float("nan")
        train_loss = ctx.mean(local_loss)

        if ema is not None:  # the averaged weights get statistics of their own before they are judged or kept
            refresh_batch_norm(kept, task.train_batches(dataset, train_idx, epoch, config.seed, 0, 1), task.training_step)
        row: dict[str, Any] = {"epoch": epoch + 1, "train_loss": train_loss}
        # the end of a slice is validated too, so that a race scores every candidate on what it has just learnt
        ends_slice = slice_spent(stop_after, progress["elapsed"] + time.perf_counter() - started, ctx)
        is_last = epoch + 1 >= planned or ends_slice
        if len(val_idx) and ((epoch + 1) % task.validate_every == 0 or is_last):
            metrics = validate(task, model, kept, dataset, val_idx, ctx)
            row.update({k: v for k, v in metrics.items() if k != "score"})
            score = float(metrics["score"])
        else:
            score = -train_loss if not len(val_idx) else None  # without validation cases: lowest train loss
        kept_epoch = None
        if score is not None:
            chosen = selector.add(epoch + 1, score, kept.state_dict())
            if chosen is not None:
                kept_epoch = chosen[0]
                progress["best_score"], progress["best_epoch"] = selector.best_score, selector.best_epoch
                if ctx.is_main:
                    run.save_weights(chosen[1])
        seconds = time.perf_counter() - started
        progress["elapsed"] += seconds
        row["seconds"], row["lr"] = seconds, lr
        progress["log"].append(row)
        progress["epoch"] = epoch + 1
        if budget is not None:
            # --minutes: the epochs that fit the budget are re-estimated after every epoch from the mean epoch time,
            # so a machine that slows down (shared cores) shortens the schedule, and the learning rate still
            # decays to its floor, instead of the budget cutting the run off half-way down the cosine
            mean_seconds = progress["elapsed"] / progress["epoch"]
            fit_in_budget = max(progress["epoch"], int(budget / max(mean_seconds, 1e-6)))
            planned = min(config.epochs, fit_in_budget) if config.epochs else fit_in_budget
            # rank 0's clock decides for all: ranks that planned different epoch counts would wait on each other forever
            progress["planned_epochs"] = ctx.broadcast(planned)
        if ctx.is_main:
            # checkpoint first: a kill or a full disk in between leaves log.csv one epoch behind, never ahead
            state = {"model": _unwrap(model).state_dict(), "optimizer": optimizer.state_dict(), "progress": progress,
                     "selection": selector.state_dict()}
            if ema is not None:
                state["ema"] = ema.state_dict()
            if precision.scaler is not None:
                state["grad_scaler"] = precision.state_dict()
            save_checkpoint(run.checkpoint_path, state)
            write_log(run.log_path, progress["log"])
        if ctx.enabled:  # each rank's own loss and time, for the trackers on rank 0 (log.csv keeps the mean)
            per_rank = ctx.gather([local_loss, seconds])
            tracked = {**row, **{f"rank{r}/{name}": values[i] for r, values in enumerate(per_rank)
                                 for i, name in enumerate(("train_loss", "seconds"))}}
        else:
            tracked = row
        for callback in callbacks:
            callback.on_epoch_end(tracked, progress)
        left = progress["planned_epochs"] - progress["epoch"]
        eta = progress["elapsed"] / progress["epoch"] * left
        kept_text = "" if kept_epoch is None else "  best" if kept_epoch == epoch + 1 else f"  best: epoch {kept_epoch}"
        say(f"epoch {epoch + 1}/{progress['planned_epochs']}  {epoch_figures(row)}  lr {lr:.2e}  {seconds:.1f}s"
            f"{kept_text}  ~{format_seconds(eta)} left")
        if budget is not None and ctx.broadcast(progress["elapsed"] > 1.25 * budget):
            say(f"stopping: the --minutes budget ({config.minutes}) is spent")
            break

    if stopped or (stop_after is not None and progress["elapsed"] >= stop_after
                   and progress["epoch"] < progress["planned_epochs"]):
        # a slice ends: the epochs still waiting for their window stay in the checkpoint; the score so far is
        # what the weights kept now would be chosen by
        epoch_now, score_now = selector.provisional()
        ctx.barrier()
        ctx.close()
        return {"best_epoch": epoch_now, "best_score": score_now, "epochs": progress["epoch"],
                "seconds": progress["elapsed"], "stopped": True, "selection": selector.record()}
    chosen = selector.finish()
    if chosen is not None:
        progress["best_score"], progress["best_epoch"] = selector.best_score, selector.best_epoch
        if ctx.is_main:
            run.save_weights(chosen[1])
    ctx.barrier()
    summary = {"best_epoch": progress["best_epoch"], "best_score": progress["best_score"],
               "epochs": progress["epoch"], "seconds": progress["elapsed"], "selection": selector.record()}
    if ctx.is_main:
        best = _unwrap(model)
        best.load_state_dict(run.load_weights())
        best.eval()
        with torch.no_grad():
            state = task.finish_training(best, dataset, val_idx)
        run.save_state({**state, "training": summary})
        for callback in callbacks:
            callback.on_train_end(summary)
    # no rank tears the process group down while rank 0 still writes the run folder
    ctx.barrier()
    ctx.close()
    return summary
