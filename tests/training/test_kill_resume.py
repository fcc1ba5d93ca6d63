"""A real training process SIGKILLed at many points resumes to the same weights, log and state as one never killed."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from faults import assert_run_readable, final_state, run_medsight, start_medsight

EPOCHS = 4
# Each resumed process is killed at the next point; together they cover every place a run can die.
KILL_CHAIN = [
    "replace:config.json:1",  # while the run folder is being set up: --resume with DATA starts it
    "backward::2",  # in the first epoch, before any checkpoint exists
    "save:checkpoint.pt:1",  # half-way through the first checkpoint
    "replace:checkpoint.pt:1",  # the checkpoint complete but not yet renamed into place
    "replace:log.csv:2",  # epoch 2 checkpointed, its log row not yet in place
    # half-way through writing the first kept weights: with 24 validation images the score is averaged over 5
    # epochs, so epoch 1's weights are kept once epoch 3 is validated, from the copies the checkpoint carries
    "save:model.safetensors:1",
    "validate::1",  # during validation of epoch 3 (again)
    "backward::5",  # in the middle of epoch 4 (epoch 3 again before it)
    "replace:state.json:1",  # after the last epoch, while writing the post-training state
]


@pytest.fixture(scope="module")
def small_npz(tmp_path_factory) -> Path:
    from medsight.synthetic.classification import make_classification_npz

    return make_classification_npz(tmp_path_factory.mktemp("data") / "lesions.npz", size=16, n_train=48, n_val=24,
                                   n_test=8, lesion_fraction=0.5, seed=5)


def train_args(data: Path, out: Path) -> list[str]:
    return ["train", data, "--out", out, "--epochs", EPOCHS, "--model", "lenet5", "--batch-size", 16]


@pytest.mark.slow  # twelve real training processes: about a minute on two idle cores
def test_killed_run_resumes_to_identical_results(small_npz, tmp_path):
    reference = tmp_path / "never_killed"
    never_killed = start_medsight(train_args(small_npz, reference))  # alongside the chain: one core each

    run = tmp_path / "killed"
    for number, point in enumerate(KILL_CHAIN):
        # what a user re-types after a crash: the same command with --resume
        args = train_args(small_npz, run) + ([] if number == 0 else ["--resume"])
        killed = run_medsight(args, kill=point)
        assert killed.returncode == -signal.SIGKILL, f"{point} was never reached: {killed.stderr}"
        assert "Traceback" not in killed.stderr
        assert_run_readable(run)
    resumed = run_medsight(["train", "--out", run, "--resume"])
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr
    assert never_killed.wait(timeout=300) == 0

    killed_state, reference_state = final_state(run), final_state(reference)
    assert killed_state["log"] == reference_state["log"]
    assert len(killed_state["log"]) == EPOCHS
    assert killed_state["state"] == reference_state["state"]
    assert killed_state["last_weights"] == reference_state["last_weights"]
    assert killed_state["best_weights"] == reference_state["best_weights"]
    assert killed_state["files"] == reference_state["files"]  # half-written temporaries were cleaned up

    again = run_medsight(["train", "--out", run, "--resume"])  # resuming a finished run changes nothing
    assert again.returncode == 0, again.stderr
    assert final_state(run) == killed_state


# Segmentation and detection, 2D and 3D: the preprocessed cache and two DataLoader workers in play.
OTHER_EPOCHS = 3
# The points where a task's own state must come back: its data pipeline mid-training (sampler, augmentation and
# worker streams restored from a checkpoint) and its post-training step (postprocessing chosen on validation).
# The points that only the training loop and the file writers handle are covered by the chain above.
OTHER_CHAIN = [
    "replace:log.csv:2",  # epoch 2 checkpointed, its log row not yet in place
    "backward::2",  # in the middle of epoch 3, resumed from epoch 2's checkpoint
    "replace:state.json:1",  # after the last epoch, while writing the post-training state
]


def other_task_data(kind: str, folder: Path) -> tuple[Path, dict, list]:
    from medsight.synthetic.detection import make_blobs_2d, make_spheres_3d
    from medsight.synthetic.segmentation import make_segmentation_dataset

    if kind.startswith("segmentation"):
        dims = int(kind[-2])
        data = make_segmentation_dataset(folder / "shapes", spatial_dims=dims, num_cases=5, seed=0, size=24 if dims == 2 else 16)
        return data, {"iterations_per_epoch": 3, "batch_size": 2, "validation_cases": 2}, ["--model", "dynunet_tiny"]
    if kind == "detection2d":
        data = make_blobs_2d(folder / "blobs", seed=0, num_images=8, size=48)
    else:
        data = make_spheres_3d(folder / "spheres", seed=0, num_cases=6, size=24)
    return data, {"iterations_per_epoch": 3}, ["--model", "retinanet", "--batch-size", 2]


@pytest.mark.slow  # 5 short training processes per task
@pytest.mark.parametrize("kind", ["segmentation2d", "segmentation3d", "detection2d", "detection3d"])
def test_killed_segmentation_and_detection_runs_resume_to_identical_results(kind, tmp_path, monkeypatch):
    import json

    from medsight import api

    monkeypatch.setenv("HOME", str(tmp_path))  # the preprocessed cache of the child processes stays in tmp_path
    data, plan_changes, options = other_task_data(kind, tmp_path)
    reference, run = tmp_path / "never_killed", tmp_path / "killed"
    for folder in (reference, run):
        plan = api.plan(data, folder)
        plan.update(plan_changes)
        if "inference" in plan:
            plan["inference"]["tta"] = False
        (folder / "plan.json").write_text(json.dumps(plan), encoding="utf-8")

    def args(out: Path) -> list:
        return ["train", data, "--out", out, "--epochs", OTHER_EPOCHS, "--workers", 2, *options]

    never_killed = start_medsight(args(reference))
    for number, point in enumerate(OTHER_CHAIN):
        killed = run_medsight(args(run) + ([] if number == 0 else ["--resume"]), kill=point)
        assert killed.returncode == -signal.SIGKILL, f"{point} was never reached: {killed.stderr}"
        assert "Traceback" not in killed.stderr
        assert_run_readable(run)
    resumed = run_medsight(["train", "--out", run, "--resume", "--workers", 2])
    assert resumed.returncode == 0, resumed.stderr
    assert never_killed.wait(timeout=600) == 0

    killed_state, reference_state = final_state(run), final_state(reference)
    assert len(killed_state["log"]) == OTHER_EPOCHS
    for key in ("log", "state", "last_weights", "best_weights", "files"):
        assert killed_state[key] == reference_state[key], key
