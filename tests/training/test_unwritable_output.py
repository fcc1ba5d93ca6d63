"""An output folder that cannot be written (read-only, or a full disk) gives one line and keeps earlier results."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from faults import assert_run_readable, medsight_env, read_log
from medsight.training.checkpoint import load_checkpoint

def fingerprint(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """Make folder unwritable: file modes for a normal user, a read-only bind mount for root (who ignores modes)."""
    if os.geteuid() != 0:
        for path in [folder, *folder.rglob("*")]:
            path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield
        finally:
            for path in [folder, *folder.rglob("*")]:
                path.chmod(0o755 if path.is_dir() else 0o644)
        return
    if subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True).returncode:
        pytest.skip("running as root without permission to mount a read-only folder")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], check=True, capture_output=True)
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def medsight(args: list) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "medsight", *map(str, args)], capture_output=True, encoding="utf-8", errors="replace",
                          timeout=300, env=medsight_env())


def assert_one_line(done: subprocess.CompletedProcess, names: str) -> None:
    """Exit code 2 and one error line naming the file, last on stderr (after any progress lines)."""
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.strip().splitlines() if line.startswith("medsight:")]
    assert len(errors) == 1 and errors[0].startswith(f"medsight: {names}"), done.stderr
    assert done.stderr.strip().splitlines()[-1] == errors[0]
    assert "Traceback" not in done.stderr


def test_read_only_out_folder(tiny_npz, tmp_path):
    out = tmp_path / "read_only_run"
    out.mkdir()
    with read_only(out):
        done = medsight(["train", tiny_npz, "--out", out, "--epochs", "1", "--model", "lenet5"])
    assert_one_line(done, str(out))
    assert "cannot be written" in done.stderr and list(out.iterdir()) == []


def test_read_only_finished_run_keeps_its_results(tiny_npz, tmp_path):
    run = tmp_path / "finished_run"
    assert medsight(["train", tiny_npz, "--out", run, "--epochs", "1", "--model", "lenet5"]).returncode == 0
    before = fingerprint(run)
    with read_only(run):
        evaluated = medsight(["evaluate", run, "--split", "test"])
        resumed = medsight(["train", "--out", run, "--resume"])
    for done in (evaluated, resumed):
        assert_one_line(done, str(run))
    assert fingerprint(run) == before


def test_full_disk_mid_training_keeps_the_last_good_checkpoint(tiny_npz, tmp_path):
    """A small tmpfs fills up at epoch 2's checkpoint; epoch 1's files stay whole and --resume finishes later."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    disk = tmp_path / "small_disk"
    disk.mkdir()
    # lenet5: weights 0.25 MB, checkpoint 0.75 MB; epoch 1 needs 1 MB, epoch 2 another 0.75 MB beside the old one
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1600k", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("this machine does not allow mounting a tmpfs")
    try:
        run = disk / "run"
        done = medsight(["train", tiny_npz, "--out", run, "--epochs", "2", "--model", "lenet5"])
        assert_one_line(done, str(run))
        assert "No space left on device" in done.stderr
        assert not list(run.glob(".*.tmp")), "a half-written temporary was left behind"
        assert_run_readable(run)
        assert load_checkpoint(run / "checkpoint.pt")["progress"]["epoch"] == 1
        assert len(read_log(run)) == 1

        subprocess.run(["mount", "-o", "remount,size=8m", str(disk)], check=True)  # space freed
        resumed = medsight(["train", "--out", run, "--resume"])
        assert resumed.returncode == 0, resumed.stderr
        assert len(read_log(run)) == 2
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
