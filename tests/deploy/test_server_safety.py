"""A server fit for a network: decompression bombs of every format get 413 from their headers, a token guards
every route but /health, and serve refuses to listen beyond loopback without one."""

from __future__ import annotations

import gzip
import io
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("httpx")

CAP = 1_000_000  # voxels; every bomb below declares 16.8 million and holds a few kB of compressed zeros
SIDE = 4096


@pytest.fixture(scope="module")
def client(trained_run):
    from fastapi.testclient import TestClient

    from medsight.serving.app import create_app

    with TestClient(create_app(trained_run, max_upload_mb=4, max_voxels=CAP)) as test_client:
        yield test_client


def png_bomb() -> bytes:
    """A real PNG of 4096 x 4096 zero pixels: 16 MB when decoded, about 16 kB on the wire."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = zlib.compress(b"\0" * ((SIDE + 1) * SIDE), 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", SIDE, SIDE, 8, 0, 0, 0, 0)) + \
        chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def nifti_bomb() -> bytes:
    import nibabel

    header = nibabel.Nifti1Header()
    header.set_data_shape((256, 256, 256))
    header.set_data_dtype(np.uint8)
    header["vox_offset"] = 352
    return gzip.compress(header.binaryblock + b"\0" * 4 + b"\0" * (256 ** 3), 9)


def tiff_bomb() -> bytes:
    import tifffile

    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.zeros((SIDE, SIDE), np.uint8), compression="zlib")
    return buffer.getvalue()


def mha_bomb() -> bytes:
    data = zlib.compress(b"\0" * (256 ** 3), 9)
    header = ("ObjectType = Image\nNDims = 3\nDimSize = 256 256 256\nElementType = MET_UCHAR\n"
              f"CompressedData = True\nCompressedDataSize = {len(data)}\nElementDataFile = LOCAL\n")
    return header.encode() + data


def nrrd_bomb() -> bytes:
    header = "NRRD0004\ntype: uint8\ndimension: 3\nsizes: 256 256 256\nencoding: gzip\n\n"
    return header.encode() + gzip.compress(b"\0" * (256 ** 3), 9)


def dicom_bomb() -> bytes:
    """A deflated DICOM file of 4096 x 4096 zero pixels (Deflated Explicit VR Little Endian)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import DeflatedExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = SecondaryCaptureImageStorage, generate_uid()
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = SecondaryCaptureImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = "OT", SIDE, SIDE, 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = b"\0" * (SIDE * SIDE)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def zip_of_dicom_bombs() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("series/slice1.dcm", dicom_bomb())
    return buffer.getvalue()


BOMBS = {"bomb.png": (png_bomb, SIDE * SIDE), "bomb.nii.gz": (nifti_bomb, 256 ** 3), "bomb.tif": (tiff_bomb, SIDE * SIDE),
         "bomb.mha": (mha_bomb, 256 ** 3), "bomb.nrrd": (nrrd_bomb, 256 ** 3), "bomb.dcm": (dicom_bomb, SIDE * SIDE),
         "series.zip": (zip_of_dicom_bombs, SIDE * SIDE)}


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_decompression_bombs_get_413_from_their_headers(client, name, monkeypatch):
    import medsight.io.images as images

    make, voxels = BOMBS[name]
    payload = make()
    assert len(payload) < (1 << 20)  # small on the wire: the byte limit alone would let it in
    read = []
    monkeypatch.setattr(images, "read_image", lambda *a, **k: read.append(a) or pytest.fail("pixels were read"))
    response = client.post("/predict", files={"file": (name, payload)})
    assert response.status_code == 413, response.text
    assert f"declares {voxels:,} voxels, more than the limit of {CAP:,}" in response.json()["detail"]
    assert not read


def test_images_under_the_voxel_cap_are_predicted(client, test_pngs):
    response = client.post("/predict", files={"file": ("case.png", sorted(test_pngs[0].glob("*.png"))[0].read_bytes())})
    assert response.status_code == 200


def test_declared_voxels_match_the_real_images(tmp_path):
    from medsight.serving.voxels import declared_voxels

    for name, (make, voxels) in BOMBS.items():
        if name.endswith(".zip"):
            continue
        (tmp_path / name).write_bytes(make())
        assert declared_voxels(tmp_path / name) == voxels, name
    import SimpleITK as sitk  # the MetaImage and NRRD bombs are real files: SimpleITK reads the same shape

    assert sitk.ReadImage(str(tmp_path / "bomb.mha")).GetSize() == (256, 256, 256)
    assert sitk.ReadImage(str(tmp_path / "bomb.nrrd")).GetSize() == (256, 256, 256)


def test_token_guards_every_route_but_health(trained_run, test_pngs):
    from fastapi.testclient import TestClient

    from medsight.serving.app import create_app

    png = sorted(test_pngs[0].glob("*.png"))[0].read_bytes()
    with TestClient(create_app(trained_run, token="s3cret")) as client:
        assert client.get("/health").status_code == 200
        for path in ("/", "/model", "/docs", "/openapi.json", "/static/app.js"):
            assert client.get(path).status_code == 401, path
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            refused = client.post("/predict", files={"file": ("case.png", png)}, headers=headers)
            assert refused.status_code == 401 and "bearer token" in refused.json()["detail"]
        good = {"Authorization": "Bearer s3cret"}
        assert client.get("/model", headers=good).status_code == 200
        assert client.post("/predict", files={"file": ("case.png", png)}, headers=good).status_code == 200


def test_serve_refuses_other_hosts_without_a_token(trained_run, capsys, monkeypatch):
    from medsight.cli import main

    monkeypatch.delenv("MEDSIGHT_TOKEN", raising=False)
    assert main(["serve", str(trained_run), "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "refuses to listen on 0.0.0.0 without a token" in err


def test_uploads_leave_nothing_behind(client, test_pngs, monkeypatch, tmp_path):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    client.post("/predict", files={"file": ("case.png", sorted(test_pngs[0].glob("*.png"))[0].read_bytes())})
    client.post("/predict", files={"file": ("bomb.png", png_bomb())})
    assert list(tmp_path.iterdir()) == []


def test_a_bomb_past_pillows_own_guard_is_counted_too(tmp_path):
    from medsight.serving.voxels import declared_voxels

    side = 20000  # 400 million pixels: Pillow refuses to open it at all (DecompressionBombError)
    rows = zlib.compressobj(9)
    row = b"\0" * (side + 1)
    data = b"".join(rows.compress(row) for _ in range(side)) + rows.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    path = tmp_path / "huge.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)) +
                     chunk(b"IDAT", data) + chunk(b"IEND", b""))
    assert declared_voxels(path) == side * side


def test_several_dicom_files_are_capped_by_their_headers_together(client, monkeypatch, tmp_path):
    """The files of a series sent at once: the voxel cap counts all their headers before any pixel is read,
    a file that is not DICOM among them is refused by name, and the temporary folder goes in every case."""
    import tempfile

    import medsight.io.images as images

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    read = []
    monkeypatch.setattr(images, "read_image", lambda *a, **k: read.append(a) or pytest.fail("pixels were read"))
    bombs = [("file", (f"slice{k}.dcm", dicom_bomb())) for k in range(2)]
    response = client.post("/predict", files=bombs)
    assert response.status_code == 413, response.text
    assert response.json()["detail"] == f"2 DICOM files: declares {2 * SIDE * SIDE:,} voxels, more than the limit of {CAP:,}"
    mixed = client.post("/predict", files=[bombs[0], ("file", ("notes.txt", b"not an image"))])
    assert mixed.status_code == 415 and mixed.json()["detail"].startswith("notes.txt: is not a DICOM file")
    assert not read and list(tmp_path.iterdir()) == []
