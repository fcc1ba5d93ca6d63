"""`medsight pack`: the archive opens in predict, serve and train --init; a changed byte is refused (exit 2)."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest


@pytest.fixture(scope="module")
def packed(run_a, tmp_path_factory):
    from medsight.cli import main

    out = tmp_path_factory.mktemp("packed") / "run_a.medsight.zip"
    assert main(["pack", str(run_a), "--out", str(out)]) == 0
    return out


def test_archive_holds_the_run_with_a_manifest(packed, run_a):
    from medsight.sharing.card import sha256

    with zipfile.ZipFile(packed) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        names = set(archive.namelist())
    files = manifest["files"]
    assert {"config.json", "plan.json", "dataset.json", "state.json", "model.safetensors", "MODEL_CARD.md",
            "eval/test/metrics.json"} <= set(files) and set(files) <= names
    assert files["model.safetensors"]["sha256"] == sha256(run_a / "model.safetensors")


def test_predict_and_serve_take_the_packed_file(packed, run_a, team_data, tmp_path):
    from PIL import Image

    from medsight.cli import main
    from medsight.serving.app import create_app

    image = np.load(team_data)["test_images"][0]
    Image.fromarray(image).save(tmp_path / "case.png")
    assert main(["predict", str(packed), str(tmp_path / "case.png"), "--out", str(tmp_path / "from_pack")]) == 0
    assert main(["predict", str(run_a), str(tmp_path / "case.png"), "--out", str(tmp_path / "from_run")]) == 0
    assert (tmp_path / "from_pack" / "predictions.csv").read_text(encoding="utf-8") == (tmp_path / "from_run" / "predictions.csv").read_text(encoding="utf-8")

    from fastapi.testclient import TestClient

    client = TestClient(create_app(packed))
    assert client.get("/model").json()["metrics"]["test"]["auc"] is not None


def test_a_tampered_archive_is_refused_in_one_line(packed, tmp_path, capsys):
    from medsight.cli import main

    tampered = tmp_path / "tampered.medsight.zip"
    with zipfile.ZipFile(packed) as source, zipfile.ZipFile(tampered, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "model.safetensors":
                data = data[:-1] + bytes([data[-1] ^ 1])
            target.writestr(item, data)
    assert main(["predict", str(tampered), str(tmp_path), "--out", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "model.safetensors does not match its sha256" in err and "tampered.medsight.zip" in err


def test_init_from_a_packed_run_prints_the_compatibility(packed, team_data, tmp_path, capsys, one_thread):
    from medsight import api

    api.train(team_data, tmp_path / "fine", model="lenet5", epochs=1, init=str(packed))
    err = capsys.readouterr().err
    table = err[err.index("to the new model ("):]
    lines = table.splitlines()[1:5]
    assert [line.split()[0] for line in lines] == ["matched", "shape", "missing", "unexpected"]
    assert int(lines[0].split()[1]) == 10 and int(lines[1].split()[2]) == 0  # lenet5 has 10 tensors, all fit


def test_init_compatibility_names_a_head_of_another_size():
    import torch

    from medsight.training.compatibility import compatibility, format_compatibility

    own = {"encoder.conv.weight": torch.zeros(4, 1, 3, 3), "head.fc.weight": torch.zeros(3, 4), "extra.bias": torch.zeros(2)}
    source = {"encoder.conv.weight": torch.zeros(4, 1, 3, 3), "head.fc.weight": torch.zeros(2, 4), "old.scale": torch.zeros(1)}
    kinds = compatibility(own, source, {"encoder.conv.weight": "encoder.conv.weight"})
    assert kinds["matched"] == [("encoder.conv.weight", "(4,1,3,3)")]
    assert kinds["shape mismatch"] == [("head.fc.weight", "model (3,4), source (2,4)")]
    assert kinds["missing"] == [("extra.bias", "(2)")] and kinds["unexpected"] == [("old.scale", "(1)")]
    text = format_compatibility(kinds, "src")
    assert "head.fc.weight model (3,4), source (2,4)" in text and "encoder.conv.* 1" in text


def test_monai_bundle_layout(run_a, tmp_path, one_thread):
    from medsight.packed import unpacked_run
    from medsight.sharing.pack import pack_run

    bundle = pack_run(run_a, tmp_path / "bundle.zip", monai_bundle=True)
    with zipfile.ZipFile(bundle) as archive:
        names = set(archive.namelist())
        metadata = json.loads(archive.read("configs/metadata.json"))
    assert {"configs/metadata.json", "models/model.safetensors", "docs/README.md",
            "configs/medsight/config.json"} <= names
    assert metadata["network_data_format"]["inputs"]["image"]["spatial_shape"] == [28, 28]
    opened = unpacked_run(bundle)
    assert (opened / "model.safetensors").read_bytes() == (run_a / "model.safetensors").read_bytes()


def test_a_manifest_cannot_write_outside_its_folder(packed, tmp_path):
    from medsight.errors import MedsightError
    from medsight.packed import unpacked_run

    with zipfile.ZipFile(packed) as source:
        manifest = json.loads(source.read("manifest.json"))
        contents = {item.filename: source.read(item) for item in source.infolist()}
    entry = manifest["files"]["config.json"]
    manifest["files"]["config.json"] = {**entry, "run_path": "../../escaped.json"}
    manifest["run"] = ".."
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as target:
        for name, data in contents.items():
            target.writestr(name, json.dumps(manifest) if name == "manifest.json" else data)
    with pytest.raises(MedsightError, match="unsafe path"):
        unpacked_run(evil)
