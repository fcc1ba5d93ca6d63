"""`medsight predict RUN --format dicom-sr` end to end on a synthetic DICOM series, for a tiny trained detection
run and a tiny classification run: the report, read back with highdicom, holds what predictions.jsonl says."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="module")
def detection_study(tmp_path_factory) -> tuple[Path, Path]:
    """A 3D RetinaNet run on eight synthetic 24^3 sphere volumes (two iterations), and a test volume written as
    a DICOM CT series (1 mm voxels, origin 0, axial: patient millimetres equal voxel indices)."""
    from medsight import api
    from medsight.synthetic.detection import make_spheres_3d
    from medsight.synthetic.dicom_series import series_of_volume

    root = tmp_path_factory.mktemp("sr-detection")
    data = make_spheres_3d(root / "nodules", seed=0, num_cases=8, size=24, radius=(2.0, 4.0), per_case=(1, 2))
    run = root / "run"
    plan = api.plan(data, run)
    plan["iterations_per_epoch"] = 2
    (run / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    api.train(data, run, epochs=1, batch_size=1)
    volume = sorted((data / "imagesTs").glob("*.nii.gz"))[0]
    series_of_volume(volume, root / "study" / "ct", spacing=1.0, slice_gap=1.0, scale=1.0)
    return run, root / "study"


@pytest.fixture(scope="module")
def classification_study(tmp_path_factory) -> tuple[Path, Path]:
    """A 3D lenet5 run on synthetic 16^3 volumes (one epoch), and a test volume written as a DICOM CT series."""
    import nibabel

    from medsight import api
    from medsight.synthetic.classification import make_classification_npz
    from medsight.synthetic.dicom_series import series_of_volume

    root = tmp_path_factory.mktemp("sr-classification")
    data = make_classification_npz(root / "volumes.npz", spatial_dims=3, size=16, n_train=32, n_val=16, n_test=8,
                                   lesion_fraction=0.5, seed=7)
    api.train(data, root / "run", epochs=1, seed=0)
    test_volume = np.load(data)["test_images"][0].astype(np.float32)
    nibabel.save(nibabel.Nifti1Image(test_volume.squeeze(), np.eye(4)), root / "case.nii.gz")
    series_of_volume(root / "case.nii.gz", root / "study" / "ct", spacing=1.0, slice_gap=1.0, scale=1.0)
    return root / "run", root / "study"


def _journal(out: Path) -> list[dict]:
    lines = (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def test_detection_sr_holds_the_predicted_boxes(detection_study, tmp_path):
    import highdicom as hd
    import pydicom

    from medsight.cli import main

    run, study = detection_study
    out = tmp_path / "out"
    assert main(["predict", str(run), str(study), "--format", "dicom-sr", "--out", str(out)]) == 0
    [entry] = _journal(out)
    assert entry["status"] == "ok"
    detections = entry["records"][0]["detections"]
    assert detections, "the tiny run predicts candidate boxes (scores below the display threshold included)"
    [path] = (out / "dicom").glob("*_findings_sr.dcm")
    report = hd.sr.srread(path)
    groups = report.content.get_volumetric_roi_measurement_groups()
    assert len(groups) == len(detections)
    for group, box in zip(groups, detections):
        assert group.finding_type.value == "27925004"  # SNOMED Nodule: the class name is known
        assert group.tracking_identifier.startswith(box["category"])
        assert group.get_measurements()[0].value == pytest.approx(box["score"], abs=1e-6)
        # the centre in patient mm, from the voxel box by hand: 1 mm voxels at origin 0, centres at whole indices
        bbox = np.asarray(box["bbox"], float)
        np.testing.assert_allclose(group.roi.graphic_data[0], bbox[:3] + bbox[3:] / 2 - 0.5, atol=0.01)  # both rounded
    source = pydicom.dcmread(next((study / "ct").iterdir()), stop_before_pixels=True)
    evidence = pydicom.dcmread(path).CurrentRequestedProcedureEvidenceSequence[0]
    assert evidence.StudyInstanceUID == source.StudyInstanceUID
    assert evidence.ReferencedSeriesSequence[0].SeriesInstanceUID == source.SeriesInstanceUID
    assert len(evidence.ReferencedSeriesSequence[0].ReferencedSOPSequence) == len(list((study / "ct").iterdir()))


def test_classification_sr_holds_the_predicted_label_and_probabilities(classification_study, tmp_path):
    import highdicom as hd
    import pydicom

    from medsight.cli import main

    run, study = classification_study
    out = tmp_path / "out"
    assert main(["predict", str(run), str(study), "--format", "dicom-sr", "--out", str(out)]) == 0
    [entry] = _journal(out)
    [record] = entry["records"]
    [path] = (out / "dicom").glob("*_classification_sr.dcm")
    groups = hd.sr.srread(path).content.get_image_measurement_groups()
    probabilities = {g.tracking_identifier: g.get_measurements()[0].value for g in groups}
    assert probabilities == pytest.approx({f"p({k})": v for k, v in record["probabilities"].items()}, abs=1e-6)
    decided = [g for g in groups if g.get_qualitative_evaluations()]
    assert [g.tracking_identifier for g in decided] == [f"p({record['class']})"]
    coded = decided[0].get_qualitative_evaluations()[0].value
    if record["class"] == "lesion":  # a name the SNOMED table knows
        assert (coded.scheme_designator, coded.value) == ("SCT", "52988006")
    else:  # any other name is a local code that spells it
        assert (coded.scheme_designator, coded.meaning) == ("99MEDSIGHT", record["class"])
    source = pydicom.dcmread(next((study / "ct").iterdir()), stop_before_pixels=True)
    assert pydicom.dcmread(path).StudyInstanceUID == source.StudyInstanceUID
