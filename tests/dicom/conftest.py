"""Fixtures for the DICOM tests: synthetic series (medsight.synthetic.dicom_series), tiny runs, a real Orthanc."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medsight.synthetic.dicom_series import write_series


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
def ct_series_of():
    """A synthetic data set's volume written as a DICOM CT series (stored = value * 100 + 1024)."""
    from medsight.synthetic.dicom_series import series_of_volume

    return series_of_volume


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


@pytest.fixture
def sr_filtering_orthanc(tmp_path):
    """An Orthanc whose own rule (a Lua ReceivedInstanceFilter) drops every SR it receives, while its STOW-RS
    answer still lists the SR as stored: the second of a SEG + SR store is refused, the first kept."""
    lua = "function ReceivedInstanceFilter(dicom, origin, info)\n  return dicom.Modality ~= 'SR'\nend\n"
    process, url = start_orthanc(tmp_path / "orthanc-sr-filter", lua)
    yield url
    process.terminate()
    process.wait(10)
