"""DistributedDataParallel with two gloo processes on CPU: torchrun and `medsight train --nproc 2`."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from faults import final_state, medsight_env, read_log, runner_command
from medsight.data.ranks import epoch_seed

AUDIT = Path(__file__).with_name("rank_audit")
PROBE = Path(__file__).with_name("augment_probe")
SOURCE = Path(__import__("medsight").__file__).parents[1]  # the medsight under test, for processes with their own PYTHONPATH
EPOCHS = 3


def with_path(*folders: Path) -> str:
    return os.pathsep.join(map(str, [*folders, SOURCE]))


@pytest.fixture(scope="module")
def ddp_npz(tmp_path_factory) -> Path:
    from medsight.synthetic.classification import make_classification_npz

    return make_classification_npz(tmp_path_factory.mktemp("data") / "lesions.npz", size=16, n_train=64, n_val=32,
                                   n_test=8, lesion_fraction=0.5, seed=11)


def planned_without_augmentation(data: Path, run: Path) -> None:
    """plan.json with augmentation off, so one process and two can be compared step for step."""
    from medsight import api

    plan = api.plan(data, run)
    plan["augment"].update(flip_axes=[], probability=0.0, brightness=0.0, contrast=[1.0, 1.0], noise=0.0)
    (run / "plan.json").write_text(json.dumps(plan), encoding="utf-8")


def train_args(data: Path, run: Path) -> list[str]:
    return ["train", str(data), "--out", str(run), "--epochs", str(EPOCHS), "--model", "lenet5", "--batch-size", "16"]


def torchrun(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]
    return subprocess.run(command, capture_output=True, encoding="utf-8", errors="replace", timeout=400, env=env)


def metric_columns(run: Path) -> dict[str, np.ndarray]:
    rows = read_log(run)
    return {k: np.array([float(r[k] or "nan") for r in rows]) for k in rows[0] if k not in ("epoch", "lr")}


def test_train_batches_give_each_rank_a_disjoint_share_of_the_same_step(tiny_npz):
    from medsight.api import read_dataset
    from medsight.config import TrainConfig
    from medsight.tasks.classification.task import ClassificationTask

    _, dataset = read_dataset(tiny_npz)
    task = ClassificationTask(ClassificationTask.make_plan(dataset), dataset.info())
    task.configure(TrainConfig(task="classification", data=str(tiny_npz), model="lenet5", batch_size=16), dataset)
    epochs = {}
    for rank, world in ((0, 1), (0, 2), (1, 2)):
        torch.manual_seed(rank)  # the global RNG differs between ranks (dropout); the order must not
        epochs[rank, world] = [b["label"] for b in task.train_batches(dataset, dataset.splits["train"], 0, 0, rank, world)]
    order = torch.randperm(len(task.train_labels), generator=torch.Generator().manual_seed(epoch_seed(0, 0)))
    assert len(epochs[0, 2]) == len(epochs[1, 2]) == len(epochs[0, 1])
    for step, whole in enumerate(epochs[0, 1]):
        assert len(epochs[0, 2][step]) == len(epochs[1, 2][step]) == len(whole) // 2
        used = order[step * 16:(step + 1) * 16]
        assert torch.equal(torch.sort(torch.cat([used[0::2], used[1::2]])).values, torch.sort(used).values)
        assert torch.equal(epochs[0, 2][step], task.train_labels[used[0::2]])
        assert torch.equal(epochs[1, 2][step], task.train_labels[used[1::2]])


@pytest.mark.slow  # one two-process training of two epochs
def test_ranks_draw_their_own_augmentations_from_seed_epoch_and_rank(ddp_npz, tmp_path):
    """Augmentation on: under torchrun each rank draws different warps, each the ones (seed, epoch, rank) give."""
    from medsight import api
    from medsight.data.augment import AugmentSettings, BatchAugment
    from medsight.tasks.classification.task import augment_generator

    sys.path.insert(0, str(PROBE))
    try:
        from sitecustomize import digest
    finally:
        sys.path.remove(str(PROBE))
    run, probe_log = tmp_path / "run", tmp_path / "draws.log"
    plan = api.plan(ddp_npz, run)
    assert plan["augment"]["probability"] > 0
    env = {**medsight_env(), "PYTHONPATH": with_path(PROBE), "MEDSIGHT_PROBE_LOG": str(probe_log)}
    done = torchrun(["-m", "medsight", "train", str(ddp_npz), "--out", str(run), "--epochs", "2", "--model", "lenet5",
                     "--batch-size", "16"], env)
    assert done.returncode == 0, done.stderr
    draws: dict[str, list[str]] = {"0": [], "1": []}
    for line in probe_log.read_text(encoding="utf-8").splitlines():
        rank, size, value = line.split()
        assert size == "8"  # the global batch of 16, half on each rank
        draws[rank].append(value)
    steps = 64 // 16
    assert len(draws["0"]) == len(draws["1"]) == 2 * steps
    assert all(a != b for a, b in zip(draws["0"], draws["1"]))  # no step where both ranks warp alike
    augment = BatchAugment(AugmentSettings.from_plan(plan), 2)
    for rank in ("0", "1"):
        expected = []
        for epoch in range(2):
            generator = augment_generator(0, epoch, int(rank))
            expected += [digest(augment.draw(8, generator)) for _ in range(steps)]
        assert draws[rank] == expected  # what a --resume at any epoch replays


def test_rank_audit_sees_a_write(tmp_path):
    """The audit that proves rank 1 writes nothing does see a write when one happens."""
    log = tmp_path / "audit.log"
    env = {**os.environ, "PYTHONPATH": with_path(AUDIT), "RANK": "1", "MEDSIGHT_AUDIT_ROOT": str(tmp_path / "run"),
           "MEDSIGHT_AUDIT_LOG": str(log)}
    (tmp_path / "run").mkdir()
    subprocess.run([sys.executable, "-c", f"open({str(tmp_path / 'run' / 'x')!r}, 'w').close()"], env=env, check=True)
    assert "rank 1 open" in log.read_text(encoding="utf-8")


@pytest.mark.slow  # four two-process trainings: about a minute on two idle cores
def test_two_processes_match_one_and_resume(ddp_npz, tmp_path):
    single, double, killed = tmp_path / "single", tmp_path / "double", tmp_path / "killed"
    for run in (single, double, killed):
        planned_without_augmentation(ddp_npz, run)
    one = subprocess.run(runner_command(train_args(ddp_npz, single)), capture_output=True, encoding="utf-8", errors="replace",
                         timeout=300, env=medsight_env())
    assert one.returncode == 0, one.stderr

    # the command a torchrun user types; ranks other than 0 are audited for any write into the run folder
    audit_log = tmp_path / "rank_writes.log"
    env = {**medsight_env(), "PYTHONPATH": with_path(AUDIT), "MEDSIGHT_AUDIT_ROOT": str(double),
           "MEDSIGHT_AUDIT_LOG": str(audit_log)}
    two = torchrun(["-m", "medsight", *train_args(ddp_npz, double)], env)
    assert two.returncode == 0, two.stderr
    assert not audit_log.exists(), audit_log.read_text(encoding="utf-8")
    assert two.stdout.count("trained:") == 1  # one rank speaks
    assert "Traceback" not in two.stderr

    # the same optimisation: each step averages the gradients of the same 16 samples, split 8 + 8
    a, b = metric_columns(single), metric_columns(double)
    assert a.keys() == b.keys()
    for column in a:
        np.testing.assert_allclose(b[column], a[column], atol=2e-4, err_msg=column)
    state_one, state_two = final_state(single), final_state(double)
    assert state_one["files"] == state_two["files"]
    for name, tensor in state_one["last_weights"].items():
        np.testing.assert_allclose(np.frombuffer(state_two["last_weights"][name], np.float32),
                                   np.frombuffer(tensor, np.float32), atol=1e-4)

    # killed under torchrun just after epoch 2's checkpoint, before its log row lands; then --resume --nproc 2
    crashed = torchrun([str(Path(__file__).with_name("fault_runner.py")), "replace:log.csv:2", "--",
                        *train_args(ddp_npz, killed)], medsight_env())
    assert crashed.returncode != 0
    with open(killed / "log.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 1
    resumed = subprocess.run([sys.executable, "-m", "medsight", "train", "--out", str(killed), "--resume", "--nproc", "2"],
                             capture_output=True, encoding="utf-8", errors="replace", timeout=300, env=medsight_env())
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr and "Traceback" not in resumed.stderr
    state_resumed = final_state(killed)
    assert state_resumed["log"] == state_two["log"]
    assert state_resumed["last_weights"] == state_two["last_weights"]
    assert state_resumed["best_weights"] == state_two["best_weights"]


def segmentation_data(folder: Path) -> tuple[Path, dict, list[str]]:
    from medsight.synthetic.segmentation import make_segmentation_dataset

    data = make_segmentation_dataset(folder / "shapes", spatial_dims=3, num_cases=8, seed=0, size=16)
    plan = {"iterations_per_epoch": 4, "batch_size": 2, "validation_cases": 2}
    return data, plan, ["--model", "dynunet_tiny"]


def detection_data(folder: Path) -> tuple[Path, dict, list[str]]:
    from medsight.synthetic.detection import make_blobs_2d

    return make_blobs_2d(folder / "blobs", seed=0, num_images=10, size=48), {"iterations_per_epoch": 4}, [
        "--model", "retinanet", "--batch-size", "2"]


@pytest.mark.slow  # two small trainings per task, one of them in two processes
@pytest.mark.parametrize("make_data", [segmentation_data, detection_data], ids=["segmentation", "detection"])
def test_other_tasks_train_in_two_processes(make_data, tmp_path):
    from medsight import api

    data, plan_changes, options = make_data(tmp_path)
    runs = {nproc: tmp_path / f"run{nproc}" for nproc in (1, 2)}
    audit_log = tmp_path / "rank_writes.log"
    for nproc, run in runs.items():
        plan = api.plan(data, run)
        plan.update(plan_changes)
        if "inference" in plan:
            plan["inference"]["mirror_axes"] = [0]
        (run / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
        env = {**medsight_env(), "HOME": str(tmp_path), "PYTHONPATH": with_path(AUDIT), "MEDSIGHT_AUDIT_ROOT": str(run),
               "MEDSIGHT_AUDIT_LOG": str(audit_log)}
        done = subprocess.run([sys.executable, "-m", "medsight", "train", str(data), "--out", str(run), "--epochs", "2",
                               "--nproc", str(nproc), *options], capture_output=True, encoding="utf-8", errors="replace", timeout=500, env=env)
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
    assert not audit_log.exists(), audit_log.read_text(encoding="utf-8")
    one, two = metric_columns(runs[1]), metric_columns(runs[2])
    assert one.keys() == two.keys()
    shown = {nproc: {k: v.round(4).tolist() for k, v in metric_columns(run).items()} for nproc, run in runs.items()}
    for column in one:  # a metric undefined on so small a set (no detections yet) is undefined in both runs
        assert len(two[column]) == 2 and np.array_equal(np.isfinite(two[column]), np.isfinite(one[column])), shown
    assert np.isfinite(two["train_loss"]).all(), shown
    # the same initial weights and the same number of samples per epoch: the first epoch's loss agrees closely
    assert abs(two["train_loss"][0] - one["train_loss"][0]) < 0.3 * abs(one["train_loss"][0]), shown
    print(shown)


def test_nproc_option_is_not_passed_to_the_workers():
    from medsight.training.launch import strip_nproc, threads_per_process

    assert strip_nproc(["train", "d", "--nproc", "2", "--out", "r"]) == ["train", "d", "--out", "r"]
    assert strip_nproc(["train", "d", "--nproc=4", "--resume"]) == ["train", "d", "--resume"]
    assert threads_per_process(2) >= 1


def test_nproc_with_bad_data_prints_one_line(tmp_path):
    data = tmp_path / "broken.npz"
    data.write_bytes(b"not an archive")
    done = subprocess.run([sys.executable, "-m", "medsight", "train", str(data), "--out", str(tmp_path / "run"),
                           "--nproc", "2"], capture_output=True, encoding="utf-8", errors="replace", timeout=300, env=medsight_env())
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(f"medsight: {data}: "), done.stderr
    assert not (tmp_path / "run").exists()


def test_minutes_budget_in_two_processes_ends_together(tiny_npz, tmp_path):
    """With --minutes, rank 0's clock fixes the epoch count for every rank (else one would wait forever)."""
    run = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "medsight", "train", str(tiny_npz), "--out", str(run), "--minutes",
                           "0.05", "--model", "lenet5", "--nproc", "2"], capture_output=True, encoding="utf-8", errors="replace", timeout=300,
                          env=medsight_env())
    assert done.returncode == 0, done.stderr
    rows = read_log(run)
    assert len(rows) >= 1 and json.loads((run / "state.json").read_text(encoding="utf-8"))["training"]["epochs"] == len(rows)
