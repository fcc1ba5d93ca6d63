"""predict --dicomweb against a real Orthanc with its DICOMweb plugin: fetch, predict, store, fetch back."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from medsight.errors import MedsightError

import os

# the shared data lie beside the repository (MEDSIGHT_SHARED names them elsewhere)
SHARED = Path(os.environ.get("MEDSIGHT_SHARED", Path(__file__).resolve().parents[3] / "shared"))
CT = SHARED / "data" / "lung_pet_ct_dx_ct_dicom" / "Lung-PET-CT-Dx"


def _coarse_run(run: Path, tmp_path: Path) -> Path:
    """The tiny run with an 8 mm target spacing, so a 30 x 512 x 512 CT is predicted in a second."""
    copy = tmp_path / "coarse-run"
    shutil.copytree(run, copy)
    plan = json.loads((copy / "plan.json").read_text(encoding="utf-8"))
    plan["target_spacing"] = [8.0, 8.0, 8.0]
    (copy / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    return copy


def _upload(url: str, files) -> str:
    import pydicom
    from dicomweb_client.api import DICOMwebClient

    datasets = [pydicom.dcmread(p) for p in files]
    DICOMwebClient(url).store_instances(datasets)
    return str(datasets[0].StudyInstanceUID)


def _series_of(url: str, study: str, modality: str) -> list[str]:
    from dicomweb_client.api import DICOMwebClient

    found = DICOMwebClient(url).search_for_series(study_instance_uid=study, search_filters={"Modality": modality})
    return [s["0020000E"]["Value"][0] for s in found]


def test_unreachable_server_is_one_line_and_exit_2(tiny_segmentation_run, tmp_path, capsys):
    from medsight.cli import main

    run, _ = tiny_segmentation_run
    code = main(["predict", str(run), "--dicomweb", "http://127.0.0.1:9/dicom-web", "--study", "1.2.3",
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "searching study 1.2.3 failed: the DICOMweb server cannot be reached" in err


def test_missing_study_and_series(tiny_segmentation_run, orthanc, ct_series_of, tmp_path):
    from medsight.dicom.web import predict_dicomweb

    run, data = tiny_segmentation_run
    with pytest.raises(MedsightError, match="has no study 1.2.3.4"):
        predict_dicomweb([str(run)], orthanc, "1.2.3.4", tmp_path / "out")
    series = ct_series_of(sorted((data / "imagesTs").glob("*.nii.gz"))[0], tmp_path / "ct")
    study = _upload(orthanc, sorted(series.iterdir()))
    with pytest.raises(MedsightError, match=f"study {study} has no series 9.9"):
        predict_dicomweb([str(run)], orthanc, study, tmp_path / "out", series="9.9")


def test_real_ct_round_trip(tiny_segmentation_run, shape_codes, orthanc, tmp_path):
    """Upload the real CT study, predict it from the PACS, store SEG + SR, fetch the SEG back and compare."""
    import highdicom as hd
    from dicomweb_client.api import DICOMwebClient

    from medsight.cli import main
    from medsight.io.images import read_image

    if not CT.is_dir():
        pytest.skip(f"{CT} is not present on this machine")
    run = _coarse_run(tiny_segmentation_run[0], tmp_path)
    files = [p for p in sorted(CT.rglob("*.dcm"))]
    study = _upload(orthanc, files)
    assert main(["predict", str(run), "--dicomweb", orthanc, "--study", study, "--format", "dicom-seg", "--store",
                 "--codes", str(shape_codes), "--out", str(tmp_path / "out")]) == 0
    [seg_series] = _series_of(orthanc, study, "SEG")
    assert len(_series_of(orthanc, study, "SR")) == 1
    [stored] = DICOMwebClient(orthanc).retrieve_series(study, seg_series)
    seg = hd.seg.Segmentation.from_dataset(stored)
    record = json.loads((tmp_path / "out" / "predictions.json").read_text(encoding="utf-8"))[0]
    local = hd.seg.segread(next((tmp_path / "out" / "dicom").glob("*_seg.dcm")))
    assert seg.SOPInstanceUID == local.SOPInstanceUID
    referenced = seg.ReferencedSeriesSequence[0]
    chosen = [s for s in _series_of(orthanc, study, "CT") if s == referenced.SeriesInstanceUID]
    assert chosen, "the SEG references a CT series of the study"
    uids = [i.ReferencedSOPInstanceUID for i in referenced.ReferencedInstanceSequence]
    mask = read_image(record["output"]).array[0]
    assert mask.shape == (30, 512, 512) and len(uids) == 30
    # frames of the fetched SEG, in the order of the slices along the patient axis, against the local mask
    from medsight.io.dicom_series import SeriesRule, choose_series, scan_study, slice_geometry

    source = choose_series(scan_study(CT), SeriesRule(), CT)
    order = [str(source.headers[i].SOPInstanceUID) for i in slice_geometry(source, CT).order]
    back = seg.get_pixels_by_source_instance(order, combine_segments=True, relabel=False)
    np.testing.assert_array_equal(back, mask)


def test_refused_store_leaves_nothing(tiny_segmentation_run, shape_codes, refusing_orthanc, ct_series_of, tmp_path):
    from medsight.dicom.web import predict_dicomweb

    run, data = tiny_segmentation_run
    series = ct_series_of(sorted((data / "imagesTs").glob("*.nii.gz"))[0], tmp_path / "ct")
    import urllib.request

    import pydicom

    for path in sorted(series.iterdir()):  # through Orthanc's own REST API, which the filter lets through
        urllib.request.urlopen(urllib.request.Request(refusing_orthanc.replace("/dicom-web", "/instances"),
                                                      data=path.read_bytes(), method="POST")).read()
    study = str(pydicom.dcmread(next(series.iterdir()), stop_before_pixels=True).StudyInstanceUID)
    with pytest.raises(MedsightError, match=r"storing the results was refused \(HTTP 403"):
        predict_dicomweb([str(run)], refusing_orthanc, study, tmp_path / "out", fmt="dicom-seg", store=True,
                         codes=shape_codes)
    assert _series_of(refusing_orthanc, study, "SEG") == [] and _series_of(refusing_orthanc, study, "SR") == []


def test_store_refused_on_the_second_instance_withdraws_the_first(tiny_segmentation_run, shape_codes,
                                                                  sr_filtering_orthanc, ct_series_of, tmp_path, capsys):
    """SEG then SR in one STOW-RS request; Orthanc keeps the SEG, drops the SR and answers that both were stored.
    The lookup after the store finds the SR missing, the SEG is deleted through Orthanc's REST API (its
    DICOMweb has no DELETE), and the PACS holds no result; the user gets one line and exit code 2."""
    import urllib.request

    from dicomweb_client.api import DICOMwebClient

    from medsight.cli import main

    run, data = tiny_segmentation_run
    series = ct_series_of(sorted((data / "imagesTs").glob("*.nii.gz"))[0], tmp_path / "ct")
    study = _upload(sr_filtering_orthanc, sorted(series.iterdir()))
    code = main(["predict", str(run), "--dicomweb", sr_filtering_orthanc, "--study", study, "--format", "dicom-seg",
                 "--store", "--codes", str(shape_codes), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "stored 1 of 2 result(s); the 1 stored were deleted again" in err
    assert _series_of(sr_filtering_orthanc, study, "SEG") == [] and _series_of(sr_filtering_orthanc, study, "SR") == []
    rest = sr_filtering_orthanc.replace("/dicom-web", "")
    instances = json.loads(urllib.request.urlopen(f"{rest}/instances").read())
    assert len(instances) == len(list(series.iterdir()))  # the CT slices only
    # the behaviour worked around: Orthanc's STOW-RS answer lists the dropped SR among the stored instances
    import pydicom

    sr = next((tmp_path / "out" / "dicom").glob("*_sr.dcm"))
    answer = DICOMwebClient(sr_filtering_orthanc).store_instances([pydicom.dcmread(sr)])
    assert [str(i.ReferencedSOPInstanceUID) for i in answer.ReferencedSOPSequence] == [str(pydicom.dcmread(sr).SOPInstanceUID)]
    assert not answer.get("FailedSOPSequence") and _series_of(sr_filtering_orthanc, study, "SR") == []
