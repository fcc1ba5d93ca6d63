"""`medsight card`: MODEL_CARD.md whose YAML header parses and carries the run's own figures and hashes."""

from __future__ import annotations

import hashlib

import pytest

yaml = pytest.importorskip("yaml")


def _header(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_card_header_and_prose(run_a, tmp_path, capsys):
    from medsight.cli import main
    from medsight.jsonio import load_json

    out = tmp_path / "MODEL_CARD.md"
    assert main(["card", str(run_a), "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    header = _header(text)
    metrics = load_json(run_a / "eval/test/metrics.json")
    result = header["model-index"][0]["results"][0]
    assert header["library_name"] == "medsight" and result["task"]["type"] == "image-classification"
    assert result["dataset"]["split"] == "test"
    reported = {m["type"]: m for m in result["metrics"]}
    assert reported["auc"]["value"] == pytest.approx(metrics["metrics"]["auc"], abs=1e-6)
    low, high = metrics["ci95"]["auc"]
    assert f"95% CI {low:.3f} to {high:.3f}" in reported["auc"]["name"]
    assert "not a medical device" in text
    weights = hashlib.sha256((run_a / "model.safetensors").read_bytes()).hexdigest()
    assert f"| model.safetensors | {weights} |" in text
    assert "expected calibration error" in text and "train 64 cases, val 24 cases, test 30 cases" in text


def test_card_uses_the_definitions_block(run_a, tmp_path):
    import shutil

    from medsight.jsonio import load_json, save_json
    from medsight.sharing.card import write_card

    copy = tmp_path / "run"
    shutil.copytree(run_a, copy)
    metrics = load_json(copy / "eval/test/metrics.json")
    save_json(copy / "eval/test/metrics.json", {**metrics, "definitions": {"auc": "area under the ROC curve, trapezoid rule"}})
    text = write_card(copy).read_text(encoding="utf-8")
    assert "- **auc**: area under the ROC curve, trapezoid rule" in text


def test_card_needs_an_evaluation(run_a, tmp_path, capsys):
    import shutil

    from medsight.cli import main

    copy = tmp_path / "run"
    shutil.copytree(run_a, copy)
    shutil.rmtree(copy / "eval")
    assert main(["card", str(copy)]) == 2
    assert "has no evaluation of the test split" in capsys.readouterr().err
