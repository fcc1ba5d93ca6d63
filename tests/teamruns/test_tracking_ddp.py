"""--track under DDP: rank 0 alone writes the events, with every rank's own loss collected through it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("tensorboard")


def test_two_ranks_track_through_rank_0(team_data, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    boards, run = tmp_path / "tb", tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "medsight", "train", str(team_data), "--out", str(run), "--model", "lenet5",
                           "--epochs", "2", "--batch-size", "16", "--nproc", "2", "--track", f"tensorboard:{boards}"],
                          capture_output=True, encoding="utf-8", errors="replace", timeout=400, env=env)
    assert done.returncode == 0, done.stderr
    folders = [p for p in boards.rglob("events.out.tfevents.*")]
    assert len(folders) == 1  # one writer: rank 0
    events = EventAccumulator(str(folders[0].parent))
    events.Reload()
    scalar = lambda tag: [e.value for e in events.Scalars(tag)]
    assert len(scalar("train_loss")) == 2
    for epoch in range(2):  # log.csv's loss is the mean of the two ranks' own losses
        mean = (scalar("rank0/train_loss")[epoch] + scalar("rank1/train_loss")[epoch]) / 2
        assert scalar("train_loss")[epoch] == pytest.approx(mean, rel=1e-5)
    assert scalar("rank0/train_loss") != scalar("rank1/train_loss")  # each rank saw other cases
