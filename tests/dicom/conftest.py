"""Synthetic DICOM series written with pydicom: known pixels, positions, orientations and UIDs."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pytest

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def write_series(folder: Path, volume: np.ndarray, series_uid: str | None = None, heights: Sequence[float] | None = None,
                 orientation: Sequence[float] = AXIAL, modality: str = "CT", description: str = "axial",
                 spacing: float = 0.5, study_uid: str = "1.2.826.0.1.3680043.8.498.1", syntax: str | None = None,
                 intercept: float = -1024.0) -> list[Path]:
    """One file per slice of volume (Z, Y, X; stored values), slice k at height heights[k] along the normal."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or generate_uid()
    heights = list(heights) if heights is not None else [2.0 * k for k in range(len(volume))]
    row, column = np.asarray(orientation[:3]), np.asarray(orientation[3:])
    normal = np.cross(row, column)
    paths = []
    for k, (pixels, height) in enumerate(zip(volume, heights)):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Test^Patient", "P1", "", "O"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.FrameOfReferenceUID = study_uid + ".9"
        ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = "20260101", "120000", "1", "A1", ""
        ds.Modality, ds.SeriesDescription, ds.SeriesNumber, ds.InstanceNumber = modality, description, 1, k + 1
        ds.Manufacturer = "synthetic"
        ds.ImageOrientationPatient = [float(v) for v in orientation]
        ds.ImagePositionPatient = [float(v) for v in normal * height]
        ds.PixelSpacing = [spacing, spacing]
        ds.SliceThickness = 2.0
        ds.Rows, ds.Columns = pixels.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = 1, intercept, "HU"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.PixelData = np.ascontiguousarray(pixels.astype(np.uint16)).tobytes()
        if syntax is not None:
            ds.compress(syntax)
        path = folder / f"slice_{k:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def ramp_volume(slices: int = 5, size: int = 8) -> np.ndarray:
    """Stored values that differ in every voxel, so any reordering or flip shows."""
    return (np.arange(slices * size * size, dtype=np.uint16).reshape(slices, size, size) * 3 + 1000)


@pytest.fixture
def series_writer():
    return write_series


@pytest.fixture
def ramp():
    return ramp_volume


@pytest.fixture(scope="session")
def tiny_segmentation_run(tmp_path_factory) -> tuple[Path, Path]:
    """A dynunet_tiny run on six synthetic 16^3 volumes (classes blob, box), one short epoch: (run, data)."""
    import json

    import medsight.data.volume_cache as volume_cache
    from medsight import api
    from medsight.synthetic.segmentation import make_segmentation_dataset

    root = tmp_path_factory.mktemp("dicom-segmentation")
    original_cache = volume_cache.default_cache_root
    volume_cache.default_cache_root = lambda: root / "cache"
    try:
        data = make_segmentation_dataset(root / "shapes", spatial_dims=3, num_cases=6, seed=0, size=16)
        run = root / "run"
        api.plan(data, run)
        plan = json.loads((run / "plan.json").read_text(encoding="utf-8"))
        plan.update({"iterations_per_epoch": 1, "batch_size": 2, "validation_cases": 2})
        plan["inference"]["tta"] = False
        (run / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
        api.train(data, run, epochs=1, model="dynunet_tiny")
        yield run, data
    finally:
        volume_cache.default_cache_root = original_cache


@pytest.fixture(scope="session")
def shape_codes(tmp_path_factory) -> Path:
    """A mapping file for the synthetic classes, which no SNOMED table knows."""
    import json

    path = tmp_path_factory.mktemp("codes") / "codes.json"
    path.write_text(json.dumps({
        "blob": {"category": ["SCT", "49755003", "Morphologically Abnormal Structure"], "type": ["SCT", "52988006", "Lesion"]},
        "box": {"category": ["SCT", "91723000", "Anatomical Structure"], "type": ["SCT", "272673000", "Bone"]}}))
    return path


@pytest.fixture
def ct_series_of(series_writer):
    """A synthetic data set's volume written as a DICOM CT series (stored = value * 100 + 1024)."""
    def write(volume_path: Path, folder: Path) -> Path:
        import SimpleITK as sitk

        volume = sitk.GetArrayFromImage(sitk.ReadImage(str(volume_path))).astype(np.float32)
        stored = np.clip(volume * 100 + 1024, 0, 65535).astype(np.uint16)
        series_writer(folder, stored, series_uid="1.2.826.0.1.3680043.8.498.77", spacing=0.9,
                      heights=[1.2 * k for k in range(len(stored))])
        return folder
    return write


ORTHANC_PLUGIN_DIRS = ("/usr/share/orthanc/plugins", "/usr/lib/orthanc/plugins")


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_orthanc(root: Path, lua: str | None = None):
    """A private Orthanc (storage in root, loopback only, DICOMweb plugin) -> (process, DICOMweb URL)."""
    import json
    import shutil
    import subprocess
    import time
    import urllib.request

    binary = shutil.which("Orthanc")
    plugin = next((Path(d) / "libOrthancDicomWeb.so" for d in ORTHANC_PLUGIN_DIRS
                   if (Path(d) / "libOrthancDicomWeb.so").is_file()), None)
    if binary is None or plugin is None:
        pytest.skip("Orthanc with its DICOMweb plugin is not installed (Debian: apt-get install orthanc orthanc-dicomweb)")
    port = _free_port()
    root.mkdir(parents=True, exist_ok=True)
    config = {"Name": "medsight-test", "StorageDirectory": str(root / "db"), "IndexDirectory": str(root / "db"),
              "HttpPort": port, "DicomServerEnabled": False, "RemoteAccessAllowed": False,
              "AuthenticationEnabled": False, "HttpTimeout": 60, "Plugins": [str(plugin)],
              "DicomWeb": {"Enable": True, "Root": "/dicom-web/"}}
    if lua:
        (root / "filter.lua").write_text(lua, encoding="utf-8")
        config["LuaScripts"] = [str(root / "filter.lua")]
    (root / "orthanc.json").write_text(json.dumps(config), encoding="utf-8")
    log = open(root / "orthanc.log", "wb")
    process = subprocess.Popen([binary, str(root / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/dicom-web/studies", timeout=1).read()
            break
        except Exception:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"Orthanc did not start: {(root / 'orthanc.log').read_text(encoding='utf-8')[-800:]}")
            time.sleep(0.2)
    return process, f"http://127.0.0.1:{port}/dicom-web"


@pytest.fixture
def orthanc(tmp_path):
    process, url = start_orthanc(tmp_path / "orthanc")
    yield url
    process.terminate()
    process.wait(10)


@pytest.fixture
def refusing_orthanc(tmp_path):
    """An Orthanc whose DICOMweb refuses every store (STOW-RS answers 403); its REST API still takes uploads."""
    lua = ("function IncomingHttpRequestFilter(method, uri, ip, username, headers)\n"
           "  return not (method == 'POST' and string.sub(uri, 1, 11) == '/dicom-web/')\nend\n")
    process, url = start_orthanc(tmp_path / "orthanc-refusing", lua)
    yield url
    process.terminate()
    process.wait(10)
