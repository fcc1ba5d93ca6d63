"""Loading never runs code from a file; a run folder records the versions that made it."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch

from medsight.cli import main
from medsight.errors import MedsightError


class Payload:
    """Unpickling this runs os.system: exactly what a crafted checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture(scope="module")
def trained_run(tiny_npz, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "run"
    assert main(["train", str(tiny_npz), "--out", str(run), "--epochs", "1", "--model", "lenet5"]) == 0
    return run


@pytest.fixture
def run_copy(trained_run, tmp_path) -> Path:
    return Path(shutil.copytree(trained_run, tmp_path / "run"))


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
def test_crafted_checkpoint_is_refused_not_run(run_copy, tmp_path, capsys, writer):
    marker = tmp_path / "code_ran"
    checkpoint = run_copy / "checkpoint.pt"
    if writer == "torch.save":
        torch.save({"model": {}, "optimizer": Payload(marker), "progress": {}}, checkpoint)
    else:
        checkpoint.write_bytes(pickle.dumps({"model": Payload(marker)}))
    capsys.readouterr()
    assert main(["train", "--out", str(run_copy), "--resume"]) == 2
    err = one_line_error(capsys)
    assert str(checkpoint) in err and "refused to load" in err
    assert not marker.exists()


def test_crafted_weights_are_refused(run_copy, tmp_path):
    from medsight.api import load_run

    marker = tmp_path / "code_ran"
    (run_copy / "model.safetensors").write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(MedsightError, match="model.safetensors: is not a readable safetensors file"):
        load_run(run_copy)
    assert not marker.exists()


def test_truncated_checkpoint_is_a_one_line_error(run_copy, capsys):
    checkpoint = run_copy / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    capsys.readouterr()
    assert main(["train", "--out", str(run_copy), "--resume"]) == 2
    assert "checkpoint.pt: is not a readable checkpoint" in one_line_error(capsys)


def test_versions_are_recorded(trained_run):
    import monai

    import medsight

    versions = json.loads((trained_run / "dataset.json").read_text(encoding="utf-8"))["versions"]
    assert versions == {"medsight": medsight.__version__, "torch": torch.__version__, "monai": monai.__version__}


def test_version_mismatch_warns_when_loading(run_copy):
    from medsight.api import load_run

    info = json.loads((run_copy / "dataset.json").read_text(encoding="utf-8"))
    info["versions"]["torch"] = "1.0.0"
    (run_copy / "dataset.json").write_text(json.dumps(info), encoding="utf-8")
    with pytest.warns(UserWarning, match=r"made with torch 1\.0\.0 \(now " + torch.__version__.replace("+", r"\+")):
        load_run(run_copy)


def test_matching_versions_do_not_warn(run_copy, recwarn):
    from medsight.api import load_run

    load_run(run_copy)
    assert not [w for w in recwarn if "made with" in str(w.message)]
