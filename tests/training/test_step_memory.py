"""The first training step's memory guard: activations counted, one MedsightError line instead of a kill."""

import os
import subprocess
import sys

import pytest
import torch

from medsight.errors import MedsightError
from medsight.training.step_memory import NoGuard, StepMemoryGuard, step_guard


def forward(batch: int) -> torch.Tensor:
    net = torch.nn.Sequential(torch.nn.Linear(1024, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 1024))
    return net(torch.randn(batch, 1024)).square().mean()


def test_saved_activations_are_counted():
    guard = StepMemoryGuard(None, "advice", available=lambda: 2**40)
    with guard:
        loss = forward(256)
    guard.after_forward()
    loss.backward()
    # at least the input, the hidden layer before and after ReLU, and the output: 4 x 256 x 1024 floats
    assert guard.saved >= 4 * 256 * 1024 * 4


def test_a_step_that_runs_out_of_memory_in_the_forward_pass_stops_with_one_line(tmp_path):
    guard = StepMemoryGuard(tmp_path, "lower batch_size", available=lambda: 100 * 2**20)
    with pytest.raises(MedsightError) as caught, guard:
        forward(8192)  # 8192 x 1024 floats: 32 MB a layer, past CHECK_EVERY
    message = str(caught.value)
    assert "does not fit in memory" in message and "lower batch_size" in message and "\n" not in message


def test_no_room_for_the_backward_pass_is_refused_after_the_forward():
    free = 300 * 2**20
    guard = StepMemoryGuard(None, "advice", available=lambda: free)
    with guard:
        forward(256)  # a few MB of activations: the forward pass fits
    guard.after_forward()  # and the backward's half of them fits in 300 - 256 MB
    guard.saved = 200 * 2**20  # a forward that saved 200 MB: its backward needs 100 MB more, 44 MB are spare
    with pytest.raises(MedsightError, match="backward pass needs about 0.10 GB more"):
        guard.after_forward()


def test_only_the_first_cpu_step_is_guarded():
    assert isinstance(step_guard(True, "cpu", None), StepMemoryGuard)
    assert isinstance(step_guard(False, "cpu", None), NoGuard)
    assert isinstance(step_guard(True, "meta", None), NoGuard)


def test_train_on_a_machine_without_room_for_a_step_exits_with_one_line(tiny_npz, tmp_path):
    """`medsight train` where the memory looks full: exit 2, one line naming the run, no traceback."""
    out = tmp_path / "run"
    program = ("import sys, medsight.training.step_memory as m\n"
               "m.available_memory_bytes = lambda: 100 * 2**20  # less than the floor: nothing can fit\n"
               "from medsight.cli import main\n"
               "raise SystemExit(main(sys.argv[1:]))\n")
    done = subprocess.run([sys.executable, "-c", program, "train", str(tiny_npz), "--out", str(out), "--epochs", "1"],
                          capture_output=True, encoding="utf-8", timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"medsight: {out}") and "does not fit in memory" in last, done.stderr
    assert "Traceback" not in done.stderr
