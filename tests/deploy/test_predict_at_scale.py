"""predict over many inputs: predictions.jsonl per case, a bad case skipped, --shard i/n, --continue, progress,
and the test-time settings --tta / --overlap / --batch."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from medsight.errors import MedsightError


def journal(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]


def csv_rows(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "predictions.csv", newline="") as handle:
        return {Path(r["file"]).name: r for r in csv.DictReader(handle)}


@pytest.fixture
def inputs(test_pngs, tmp_path) -> Path:
    """The eight test PNGs and one broken file among them."""
    folder = tmp_path / "inputs"
    shutil.copytree(test_pngs[0], folder)
    (folder / "case_99_broken.png").write_bytes(b"\x89PNG but not really")
    return folder


def test_a_bad_case_is_recorded_and_skipped_and_progress_says_time_left(trained_run, inputs, tmp_path):
    from medsight.inference.predictor import Predictor

    lines: list[str] = []
    records = Predictor([trained_run]).predict_files([inputs], tmp_path / "out", echo=lines.append)
    entries = journal(tmp_path / "out")
    assert len(entries) == 9 and len(records) == 8
    broken = [e for e in entries if e["status"] == "error"]
    assert [Path(e["input"]).name for e in broken] == ["case_99_broken.png"]
    assert "case_99_broken.png" in broken[0]["input"] and broken[0]["error"]
    assert any(line.startswith("medsight: skipped") and "case_99_broken.png" in line for line in lines)
    assert lines[-1].startswith("predict: 9/9,") and "left" in lines[-1]
    rows = csv_rows(tmp_path / "out")
    assert len(rows) == 9 and rows["case_99_broken.png"]["error"] and not rows["case_00.png"]["error"]


def test_shards_split_the_inputs_with_no_overlap(trained_run, inputs, tmp_path):
    from medsight.cli import main
    from medsight.inference.journal import parse_shard, shard_inputs

    seen = []
    for index in range(3):
        assert main(["predict", str(trained_run), str(inputs), "--out", str(tmp_path / f"shard{index}"),
                     "--shard", f"{index}/3"]) == 0
        seen.append({e["input"] for e in journal(tmp_path / f"shard{index}")})
    every = {str(p.resolve()) for p in inputs.iterdir()}
    assert set.union(*seen) == every
    assert sum(len(s) for s in seen) == len(every)  # disjoint
    assert [len(s) for s in seen] == [3, 3, 3]
    names = [Path(f"/d/{c}.png") for c in "edcba"]
    assert shard_inputs(names, (1, 2)) == [Path("/d/b.png"), Path("/d/d.png")]
    assert parse_shard("2/4") == (2, 4) and parse_shard(None) is None
    for bad in ("4/4", "-1/2", "1of2", "0/0"):
        with pytest.raises(MedsightError, match="--shard"):
            parse_shard(bad)


def test_continue_skips_what_the_same_weights_predicted(trained_run, second_run, inputs, tmp_path):
    from medsight.inference.predictor import Predictor

    whole, out = tmp_path / "whole", tmp_path / "out"
    Predictor([trained_run]).predict_files([inputs], whole)

    # a run killed after three cases, in the middle of writing the fourth line
    predictor = Predictor([trained_run])
    predictor.predict_files([inputs], out)
    kept = (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()[:3]
    (out / "predictions.jsonl").write_text("\n".join(kept) + '\n{"input": "/cut/sh', encoding="utf-8")
    lines: list[str] = []
    predictor.predict_files([inputs], out, resume=True, echo=lines.append)
    entries = journal_lines(out)
    assert len(entries) == 3 + 6  # the three done are not predicted again, the other six are
    assert any("3 of 9 input(s) already predicted by these weights" in line for line in lines)
    assert csv_rows(out) == csv_rows(whole)  # the summary covers every input, as an uninterrupted run

    predictor.predict_files([inputs], out, resume=True, echo=lines.append)
    assert len(journal_lines(out)) == 9 + 1  # only the broken input is tried again

    other = Predictor([second_run])
    assert other.weights_digest() != predictor.weights_digest()
    other.predict_files([inputs], out, resume=True)
    assert len(journal_lines(out)) == 10 + 9  # other weights: everything again


def journal_lines(out: Path) -> list[dict]:
    from medsight.inference.journal import read_journal

    return read_journal(out / "predictions.jsonl")


def test_test_time_settings_replace_the_plan(segmentation_run, tmp_path):
    from medsight.inference.predictor import Predictor
    from medsight.inference.settings import test_time_plan

    run, data = segmentation_run
    predictor = Predictor([run], tta="off", overlap=0.25, batch=3)
    inference = predictor.task.plan["inference"]
    assert (inference["tta"], inference["overlap"], inference["sw_batch_size"]) == (False, 0.25, 3)
    assert Predictor([run], tta="mirror").task.plan["inference"]["tta"] is True
    assert json.loads((run / "plan.json").read_text(encoding="utf-8"))["inference"]["overlap"] != 0.25  # the run is not edited

    images = sorted((data / "imagesTr").iterdir())[:2]
    lines: list[str] = []
    records = predictor.predict_files(images, tmp_path / "out", echo=lines.append)
    assert len(records) == 2 and all(e["status"] == "ok" for e in journal(tmp_path / "out"))
    assert lines[-1].startswith("predict: 2/2,") and "left" in lines[-1]
    assert len(json.loads((tmp_path / "out" / "predictions.json").read_text(encoding="utf-8"))) == 2

    with pytest.raises(MedsightError, match="no test-time mirroring"):
        test_time_plan({}, "detection", tta="mirror")
    assert test_time_plan({}, "classification", tta="mirror")["inference"]["tta"] is True
    with pytest.raises(MedsightError, match="--overlap"):
        test_time_plan({}, "segmentation", overlap=1.0)
    assert test_time_plan({}, "detection", overlap=0.5)["window_overlap"] == 0.5
    assert test_time_plan({}, "classification", batch=4)["inference"]["batch"] == 4
