"""train --init / --freeze encoder / --init-lr-scale: what is loaded, skipped, frozen and how fast each part learns."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from medsight.cli import main
from medsight.run import load_weights
from medsight.training.checkpoint import load_checkpoint
from medsight.training.transfer import aligned_names, encoder_names, load_matching

MODEL = "resnet18_half"
HEAD = {"head.weight", "head.bias"}


def relabelled(source: Path, out: Path, classes: int) -> Path:
    """The same images with random labels over `classes` classes: a source task with another head size."""
    arrays = dict(np.load(source))
    rng = np.random.default_rng(0)
    for split in ("train", "val", "test"):
        arrays[f"{split}_labels"] = rng.integers(0, classes, (len(arrays[f"{split}_labels"]), 1))
    arrays["label_names"] = np.array([f"class{k}" for k in range(classes)])
    np.savez(out, **arrays)
    return out


def train(data: Path, out: Path, *extra: str) -> Path:
    assert main(["train", str(data), "--out", str(out), "--epochs", "1", "--model", MODEL, *extra]) == 0
    return out


@pytest.fixture(scope="module")
def sources(tiny_npz, tmp_path_factory):
    """Two trained source runs: three classes (another head) and two classes (the same head)."""
    root = tmp_path_factory.mktemp("sources")
    three = relabelled(tiny_npz, root / "three.npz", 3)
    return {"three": train(three, root / "three"), "two": train(tiny_npz, root / "two", "--seed", "5")}


def fresh_model(run: Path):
    from medsight.api import load_run

    _, task, _ = load_run(run)
    torch.manual_seed(0)
    return task.build_model(MODEL)


def test_init_loads_every_matching_tensor_and_reports_the_new_head(sources, tiny_npz, tmp_path, capsys):
    source = load_weights(sources["three"] / "model.safetensors")
    model = fresh_model(sources["two"])
    encoder = [n for n in model.state_dict() if n not in HEAD]
    assert not all(torch.equal(model.state_dict()[n], source[n]) for n in encoder)  # the check can fail
    record = load_matching(model, sources["three"] / "model.safetensors")
    assert all(torch.equal(model.state_dict()[n], source[n]) for n in encoder)
    assert set(record.skipped) == HEAD and "source (3, 256)" in record.skipped["head.weight"]
    assert sorted(record.loaded) == sorted(encoder)

    run = train(tiny_npz, tmp_path / "run", "--init", str(sources["three"]))
    err = capsys.readouterr().err
    summary = [line for line in err.splitlines() if line.startswith("init:")]
    assert 1 <= len(summary) <= 2 and f"loaded {len(encoder)} of {len(encoder) + 2}" in summary[0]
    assert "head.weight (shape (2, 256), source (3, 256))" in summary[0]
    assert json.loads((run / "config.json").read_text(encoding="utf-8"))["init"] == str(sources["three"].resolve())
    written = json.loads((run / "init.json").read_text(encoding="utf-8"))
    assert set(written["skipped"]) == HEAD and len(written["loaded"]) == len(encoder)


@pytest.mark.parametrize("name", ["weights.pt", "weights.safetensors"])
def test_init_refuses_a_pickle_in_one_line_and_never_runs_it(tiny_npz, tmp_path, capsys, name):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            import os

            return os.system, (f"touch {marker}",)

    crafted = tmp_path / name
    crafted.write_bytes(pickle.dumps({"fc.weight": Payload()}))
    assert main(["train", str(tiny_npz), "--out", str(tmp_path / "run"), "--epochs", "1", "--init", str(crafted)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(crafted) in err
    assert not marker.exists() and not (tmp_path / "run" / "model.safetensors").exists()


def test_freeze_encoder_keeps_the_encoder_and_trains_the_head(sources, tiny_npz, tmp_path):
    source = load_weights(sources["two"] / "model.safetensors")
    frozen = load_checkpoint(train(tiny_npz, tmp_path / "frozen", "--init", str(sources["two"]), "--freeze", "encoder")
                             / "checkpoint.pt")["model"]
    free = load_checkpoint(train(tiny_npz, tmp_path / "free", "--init", str(sources["two"])) / "checkpoint.pt")["model"]
    encoder = [n for n in source if n not in HEAD]  # parameters and batch-norm statistics
    assert all(torch.equal(frozen[n], source[n]) for n in encoder)
    assert not all(torch.equal(free[n], source[n]) for n in encoder)
    assert all(not torch.equal(frozen[n], source[n]) for n in HEAD)
    record = json.loads((tmp_path / "frozen" / "init.json").read_text(encoding="utf-8"))
    assert set(record["frozen"]) == set(encoder_names(fresh_model(sources["two"])))


def test_pretrained_tensors_train_at_the_scaled_learning_rate(sources, tiny_npz, tmp_path):
    run = train(tiny_npz, tmp_path / "run", "--init", str(sources["three"]), "--init-lr-scale", "0.25")
    groups = load_checkpoint(run / "checkpoint.pt")["optimizer"]["param_groups"]
    assert [g["lr_scale"] for g in groups] == [1.0, 0.25]
    assert groups[1]["lr"] == pytest.approx(0.25 * groups[0]["lr"])
    parameters = [n for n, _ in fresh_model(run).named_parameters()]
    assert len(groups[0]["params"]) == 2 and len(groups[1]["params"]) == len(parameters) - 2


def test_resume_keeps_frozen_set_and_groups_without_the_source(sources, tiny_npz, tmp_path, monkeypatch):
    from medsight import api
    from medsight.tasks.classification.task import ClassificationTask

    source = shutil.copytree(sources["two"], tmp_path / "source")
    original, calls = ClassificationTask.validate, []

    def fail_second_epoch(self, *args):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # as a kill after the first epoch's checkpoint
        return original(self, *args)

    monkeypatch.setattr(ClassificationTask, "validate", fail_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        api.train(tiny_npz, tmp_path / "run", model=MODEL, epochs=2, init=source, freeze="encoder")
    monkeypatch.setattr(ClassificationTask, "validate", original)
    shutil.rmtree(source)  # the init happened at the start; a resume must not need the source again
    summary = api.train(None, tmp_path / "run", resume=True)
    assert summary["epochs"] == 2
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    reference = load_weights(sources["two"] / "model.safetensors")
    assert all(torch.equal(state["model"][n], reference[n]) for n in reference if n not in HEAD)
    # the same classes: the head loaded too, so every trainable tensor is pretrained and in the scaled group
    assert [g["lr_scale"] for g in state["optimizer"]["param_groups"]] == [0.1]


def test_old_config_without_transfer_fields_still_loads(tmp_path):
    from medsight.config import TrainConfig

    path = tmp_path / "config.json"
    path.write_text(json.dumps({"task": "classification", "data": "x.npz", "model": MODEL, "epochs": 3}), encoding="utf-8")
    config = TrainConfig.load(path)
    assert config.init is None and config.freeze == "none" and config.init_lr_scale == 0.1


def test_freeze_without_init_is_refused(tiny_npz, tmp_path, capsys):
    assert main(["train", str(tiny_npz), "--out", str(tmp_path / "run"), "--epochs", "1", "--freeze", "encoder"]) == 2
    assert "--freeze encoder needs --init" in capsys.readouterr().err


def test_segmentation_dynunet_loads_the_encoder_and_freezes_it(tmp_path):
    from medsight.models import create_model
    from medsight.run import save_weights
    from medsight.synthetic.segmentation import make_segmentation_dataset

    data = make_segmentation_dataset(tmp_path / "shapes", spatial_dims=2, num_cases=6, seed=0, size=32)
    source = tmp_path / "source"
    assert main(["plan", str(data), "--out", str(source)]) == 0
    plan = json.loads((source / "plan.json").read_text(encoding="utf-8"))
    plan.update(iterations_per_epoch=2, batch_size=2, validation_cases=1)
    (source / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    shutil.copytree(source, tmp_path / "target")
    common = ["--epochs", "1", "--model", "dynunet_tiny"]
    assert main(["train", str(data), "--out", str(source), *common]) == 0
    assert main(["train", str(data), "--out", str(tmp_path / "target"), *common, "--init", str(source),
                 "--freeze", "encoder"]) == 0
    before, after = load_weights(source / "model.safetensors"), load_checkpoint(tmp_path / "target" / "checkpoint.pt")["model"]
    encoder = [n for n in before if n.split(".")[0] in ("input_block", "downsamples", "bottleneck")]
    decoder = [n for n in before if n.startswith("upsamples.") and n.endswith("weight")]
    assert encoder and all(torch.equal(after[n], before[n]) for n in encoder)
    assert decoder and not all(torch.equal(after[n], before[n]) for n in decoder)

    # another number of classes: the encoder and decoder load, the output convolutions stay new
    args = dict(spatial_dims=2, in_channels=1, kernel_sizes=plan["kernel_sizes"], strides=plan["strides"])
    save_weights(tmp_path / "five.safetensors", create_model("dynunet_tiny", "segmentation", num_classes=5, **args).state_dict())
    record = load_matching(create_model("dynunet_tiny", "segmentation", num_classes=3, **args), tmp_path / "five.safetensors")
    assert record.skipped and all(n.startswith(("output_block.", "deep_supervision_heads.")) for n in record.skipped)
    assert set(encoder) <= set(record.loaded)


def test_detection_backbones_line_up_across_module_paths():
    from medsight.models import create_model

    args = dict(spatial_dims=2, in_channels=1, num_classes=2, anchor_shapes=[[8, 8], [16, 16]], feature_map_scales=[1, 2, 4])
    retina = create_model("retinanet", "detection", **args).state_dict()
    rcnn = create_model("faster_rcnn", "detection", **args).state_dict()
    pairs = aligned_names(rcnn, retina)
    backbone = [n for n in rcnn if n.startswith("feature_extractor.")]
    assert sorted(pairs) == sorted(backbone)
    assert all(pairs[n] == "network." + n for n in backbone)
