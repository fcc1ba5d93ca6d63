"""medsight pretrain: contrastive (classification) and masked reconstruction (segmentation) runs that --init accepts."""

from __future__ import annotations

import csv
import json
import shutil

import pytest
import torch

from medsight.cli import main
from medsight.run import load_weights


def log_column(run, name):
    with open(run / "log.csv") as handle:
        return [float(row[name]) for row in csv.DictReader(handle)]


@pytest.fixture(scope="module")
def pretrained(tiny_npz, tmp_path_factory):
    run = tmp_path_factory.mktemp("pretrain") / "run"
    assert main(["pretrain", str(tiny_npz), "--out", str(run), "--epochs", "3", "--model", "resnet18_half",
                 "--batch-size", "16"]) == 0
    return run


def test_contrastive_loss_decreases_and_the_run_is_complete(pretrained):
    losses = log_column(pretrained, "train_loss")
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert losses[0] < 1.01 * torch.log(torch.tensor(2 * 16 - 1.0)).item()  # starts near chance: log(2B - 1)
    config = json.loads((pretrained / "config.json").read_text(encoding="utf-8"))
    assert config["extra"]["pretrain"] == "contrastive" and config["model"] == "resnet18_half"
    assert (pretrained / "checkpoint.pt").is_file() and (pretrained / "plan.json").is_file()


def test_pretrained_encoder_initialises_a_classification_run(pretrained, tiny_npz, tmp_path):
    from medsight.run import load_run

    weights = load_weights(pretrained / "model.safetensors")
    assert not any(name.startswith("head.") for name in weights)  # the head was the projection, kept under pretext.
    assert main(["train", str(tiny_npz), "--out", str(tmp_path / "run"), "--epochs", "1", "--model", "resnet18_half",
                 "--init", str(pretrained)]) == 0
    record = json.loads((tmp_path / "run" / "init.json").read_text(encoding="utf-8"))
    _, task, model = load_run(tmp_path / "run")
    encoder = [n for n in model.state_dict() if not n.startswith("head.")]
    matched = set(record["loaded"]) & set(encoder)
    assert len(matched) / len(encoder) > 0.9
    assert set(record["skipped"]) == {"head.weight", "head.bias"}
    assert all(n.startswith("pretext.") for n in record["unused"])


def test_a_pretraining_run_is_refused_by_evaluate(pretrained, capsys):
    assert main(["evaluate", str(pretrained)]) == 2
    assert "pre-training run" in capsys.readouterr().err


def test_pretraining_resumes_from_its_checkpoint(pretrained, tmp_path):
    from medsight import api

    run = shutil.copytree(pretrained, tmp_path / "run")
    config = json.loads((run / "config.json").read_text(encoding="utf-8"))
    summary = api.pretrain(None, run, resume=True)  # every epoch is done: it finishes from the checkpoint
    assert summary["epochs"] == 3 and json.loads((run / "config.json").read_text(encoding="utf-8")) == config


def test_masked_reconstruction_initialises_a_segmentation_encoder(tmp_path):
    from medsight.synthetic.segmentation import make_segmentation_dataset

    data = make_segmentation_dataset(tmp_path / "shapes", spatial_dims=2, num_cases=6, seed=0, size=32)
    pre, target = tmp_path / "pre", tmp_path / "target"
    assert main(["plan", str(data), "--out", str(pre)]) == 0
    plan = json.loads((pre / "plan.json").read_text(encoding="utf-8"))
    plan.update(iterations_per_epoch=6, batch_size=2, validation_cases=1)
    (pre / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    shutil.copytree(pre, target)
    assert main(["pretrain", str(data), "--out", str(pre), "--epochs", "2", "--model", "dynunet_tiny"]) == 0
    losses = log_column(pre, "train_loss")
    assert losses[-1] < losses[0]
    assert main(["train", str(data), "--out", str(target), "--epochs", "1", "--model", "dynunet_tiny",
                 "--init", str(pre)]) == 0
    record = json.loads((target / "init.json").read_text(encoding="utf-8"))
    encoder = [n for n in load_weights(target / "model.safetensors")
               if n.split(".")[0] in ("input_block", "downsamples", "bottleneck")]
    assert set(encoder) <= set(record["loaded"])
    assert not any(n.startswith(("upsamples.", "output_block.")) for n in record["loaded"])
