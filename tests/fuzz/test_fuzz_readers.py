"""Property-based bad input for every reader: `medsight check` ends with exit code 2 and one line naming the
file, never a traceback, never a file left behind.

Each reader gets empty, truncated, random and wrong-typed files (which must all be refused) and files with a
few bytes changed (which may still be valid, so exit code 0 is allowed for them, a traceback never).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from medsight.cli import main
from medsight.io.images import read_image

# per reader; MEDSIGHT_FUZZ_EXAMPLES=300 explores more (and randomly) for a longer soak
EXAMPLES = int(os.environ.get("MEDSIGHT_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize="MEDSIGHT_FUZZ_EXAMPLES" not in os.environ,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@dataclass(frozen=True)
class Target:
    """A data set whose file `victim` is damaged, and the path given to `medsight check`."""

    name: str
    build: Callable[[Path], tuple[Path, Path]]  # folder -> (data set path for check, victim file)


def image_bytes(suffix: str) -> bytes:
    """A small valid file of the given image type, written by the libraries medsight reads with."""
    import SimpleITK as sitk
    from PIL import Image as PILImage

    rng = np.random.default_rng(0)
    if suffix in (".png", ".jpg"):
        buffer = io.BytesIO()
        PILImage.fromarray(rng.integers(0, 255, (12, 12), dtype=np.uint8)).save(buffer, "PNG" if suffix == ".png" else "JPEG")
        return buffer.getvalue()
    if suffix == ".tif":
        import tifffile

        buffer = io.BytesIO()
        tifffile.imwrite(buffer, rng.integers(0, 65535, (12, 12), dtype=np.uint16))
        return buffer.getvalue()
    shape = (10, 10) if suffix == ".dcm" else (4, 6, 5)
    image = sitk.GetImageFromArray(rng.integers(0, 255, shape).astype(np.uint8 if suffix == ".dcm" else np.int16))
    image.SetSpacing((0.8,) * len(shape))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"image{suffix}"
        sitk.WriteImage(image, str(path))
        return path.read_bytes()


def image_folder(suffix: str) -> Callable[[Path], tuple[Path, Path]]:
    def build(root: Path) -> tuple[Path, Path]:
        payload = image_bytes(suffix)
        for label in ("benign", "malignant"):
            (root / "train" / label).mkdir(parents=True)
            for case in range(4):
                (root / "train" / label / f"case{case}{suffix}").write_bytes(payload)
        return root, root / "train" / "malignant" / f"case2{suffix}"

    return build


def labels_csv(root: Path) -> tuple[Path, Path]:
    payload = image_bytes(".png")
    rows = ["path,label,split"]
    for case in range(8):
        (root / f"case{case}.png").write_bytes(payload)
        rows.append(f"case{case}.png,{'ab'[case % 2]},{'train' if case < 6 else 'test'}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root / "labels.csv", root / "labels.csv"


def medmnist(root: Path) -> tuple[Path, Path]:
    from medsight.synthetic.classification import make_classification_npz

    path = make_classification_npz(root / "tiny.npz", size=16, n_train=12, n_val=4, n_test=4, seed=1)
    return path, path


def coco(root: Path) -> tuple[Path, Path]:
    from medsight.synthetic.detection import make_blobs_2d

    make_blobs_2d(root, seed=0, num_images=6, size=32)
    return root, root / "annotations.json"


def voc(root: Path) -> tuple[Path, Path]:
    from PIL import Image as PILImage

    for folder in ("Annotations", "JPEGImages"):
        (root / folder).mkdir()
    for case in range(4):
        PILImage.new("L", (40, 30), 90).save(root / "JPEGImages" / f"case{case}.jpg")
        (root / "Annotations" / f"case{case}.xml").write_text(
            f"<annotation><filename>case{case}.jpg</filename><size><width>40</width><height>30</height></size>"
            f"<object><name>{'ab'[case % 2]}</name><bndbox><xmin>3</xmin><ymin>4</ymin><xmax>20</xmax>"
            "<ymax>25</ymax></bndbox></object></annotation>")
    return root, root / "Annotations" / "case1.xml"


def nnunet(victim: str) -> Callable[[Path], tuple[Path, Path]]:
    def build(root: Path) -> tuple[Path, Path]:
        from medsight.synthetic.segmentation import make_segmentation_dataset

        make_segmentation_dataset(root, spatial_dims=3, num_cases=5, seed=0, size=16)
        return root, root / victim

    return build


def mask_pairs(victim: str) -> Callable[[Path], tuple[Path, Path]]:
    def build(root: Path) -> tuple[Path, Path]:
        """images/ and masks/ of the same names (Kvasir-SEG's layout), masks 0/255."""
        from PIL import Image as PILImage

        image = image_bytes(".png")
        for case in range(5):
            (root / "images").mkdir(exist_ok=True)
            (root / "masks").mkdir(exist_ok=True)
            (root / "images" / f"case{case}.png").write_bytes(image)
            mask = np.zeros((12, 12), np.uint8)
            mask[2:6 + case, 3:8] = 255
            PILImage.fromarray(mask).save(root / "masks" / f"case{case}.png")
        return root, root / victim

    return build


def label_table(root: Path) -> tuple[Path, Path]:
    """Kaggle's train.csv of ids without their ending, the images in train_images/."""
    payload = image_bytes(".png")
    rows = ["id_code,diagnosis"]
    (root / "train_images").mkdir()
    for case in range(8):
        (root / "train_images" / f"c{case}.png").write_bytes(payload)
        rows.append(f"c{case},{case % 2}")
    (root / "train.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root, root / "train.csv"


TARGETS = [
    Target("mask .png (images + masks)", mask_pairs("masks/case2.png")),
    Target("image .png (images + masks)", mask_pairs("images/case3.png")),
    Target("train.csv (ids, Kaggle)", label_table),
    Target("annotations.json (COCO)", coco),
    Target("VOC XML", voc),
    Target("nnU-Net dataset.json", nnunet("dataset.json")),
    Target("nnU-Net label .nii.gz", nnunet("labelsTr/shapes_001.nii.gz")),
    Target("nnU-Net image .nii.gz", nnunet("imagesTr/shapes_001_0000.nii.gz")),
    Target("npz (MedMNIST)", medmnist),
    Target("labels.csv", labels_csv),
    *[Target(f"{suffix} (image folder)", image_folder(suffix))
      for suffix in (".png", ".jpg", ".tif", ".nii.gz", ".nii", ".nrrd", ".mha", ".dcm")],
]
WRONG_TYPED = {  # a valid file of another kind under the victim's name
    "png": image_bytes(".png"), "nifti": image_bytes(".nii.gz"), "json": b'{"images": [], "annotations": []}',
    "xml": b"<annotation><object><name>x</name></object></annotation>", "csv": b"path,label\na.png,1\n",
    "pickle": b"\x80\x04\x95\x0b\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94\x8c\x06system\x94\x93\x94.",
    "text": "päth,läbel\n\u2603".encode("utf-8"), "npz_as_zip": b"PK\x05\x06" + bytes(18),
}
IMAGES = ("png", "nifti")


@pytest.fixture(params=TARGETS, ids=lambda t: t.name)
def target(request, tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    data, victim = request.param.build(root)
    return request.param.name, data, victim, victim.read_bytes()


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def check_once(name: str, data: Path, victim: Path, payload: bytes, capsys, must_fail: bool, cases) -> int:
    victim.write_bytes(payload)
    root = data if data.is_dir() else data.parent
    before = listing(root)
    capsys.readouterr()
    cases[name] += 1
    code = main(["check", str(data)])
    out, err = capsys.readouterr()
    assert listing(root) == before, "check left files behind"
    if code == 0 and not must_fail:
        return code
    assert code == 2, f"exit code {code} for {len(payload)} bytes: {err or out}"
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("medsight: "), err
    # a label table that no longer reads as one leaves a folder of another layout, which the message names
    assert str(victim) in lines[0] or (victim.suffix == ".csv" and str(data) in lines[0]), lines[0]
    return code


def damaged(valid: bytes) -> st.SearchStrategy[tuple[str, bytes]]:
    """(kind, bytes): refused kinds first, then bytes changed in place (which may leave a valid file)."""
    size = len(valid)
    truncated = st.integers(0, max(0, size - 17)).map(lambda n: ("truncated", valid[:n]))
    random = st.binary(min_size=1, max_size=4096).map(lambda b: ("random", b))
    # a picture under another image suffix may be read by its content (SimpleITK, Pillow): it is a valid image
    wrong = st.sampled_from(sorted(WRONG_TYPED)).map(lambda k: ("other image" if k in IMAGES else "wrong-typed", WRONG_TYPED[k]))

    def flip(edits: list[tuple[int, int]]) -> tuple[str, bytes]:
        data = bytearray(valid)
        for position, value in edits:
            data[position % size] = value
        return "changed", bytes(data)

    changed = st.lists(st.tuples(st.integers(0, size - 1), st.integers(0, 255)), min_size=1, max_size=8).map(flip)
    return st.one_of(st.just(("empty", b"")), truncated, random, wrong, changed)


def test_bad_files_end_in_one_line_and_exit_code_2(target, capsys, fuzz_cases):
    name, data, victim, valid = target
    pixels = read_image(victim).array if victim.suffix not in (".npz", ".csv", ".json", ".xml") else None

    @FUZZ
    @given(damaged(valid))
    def case(kind_and_bytes):
        kind, payload = kind_and_bytes
        if payload == valid:
            return
        image = victim.suffix not in (".npz", ".csv", ".json", ".xml")
        # a picture that lost only trailing bytes after its pixel data may still be read, but never altered
        may_be_valid = kind in ("changed", "truncated") if image else kind == "changed" or (
            kind == "truncated" and victim.suffix == ".csv")
        may_be_valid |= kind == "other image" and image
        may_be_valid |= victim.name == "dataset.json" and kind == "wrong-typed" and payload.startswith(b"{")
        code = check_once(name, data, victim, payload, capsys, not may_be_valid, fuzz_cases)
        if code == 0 and kind == "truncated" and image:
            assert np.array_equal(read_image(victim).array, pixels), f"truncated to {len(payload)} bytes, read altered"

    case()
    print(f"fuzz {name}: {fuzz_cases[name]} cases")


@st.composite
def odd_npz(draw) -> bytes:
    """A well-formed .npz whose arrays have the wrong dtype, rank, length or values."""
    dtypes = st.sampled_from(["uint8", "float32", "int64", "bool", "<U3", "complex64", "float16"])
    arrays = {}
    for split in draw(st.lists(st.sampled_from(["train", "val", "test"]), min_size=0, max_size=3, unique=True)):
        shape = draw(st.lists(st.integers(0, 5), min_size=0, max_size=5))
        arrays[f"{split}_images"] = np.zeros(shape, dtype=draw(dtypes))
        labels = draw(st.lists(st.integers(-3, 3) | st.just(2**40), min_size=0, max_size=6))
        with np.errstate(over="ignore"):  # out-of-range labels wrap around: wrong values are the point
            arrays[f"{split}_labels"] = np.array(labels).astype(draw(dtypes)).reshape(-1, *([1] if draw(st.booleans()) else []))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def test_npz_with_wrong_arrays_is_refused_or_read(tmp_path, capsys, fuzz_cases):
    victim = tmp_path / "odd.npz"

    @FUZZ
    @given(odd_npz())
    def case(payload):
        check_once("npz wrong-typed arrays", victim, victim, payload, capsys, False, fuzz_cases)

    case()
    print(f"fuzz npz wrong-typed arrays: {fuzz_cases['npz wrong-typed arrays']} cases")


def run_real(command: list) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "medsight", *map(str, command)], capture_output=True, encoding="utf-8", errors="replace",
                          timeout=120)


def assert_one_line_about(done: subprocess.CompletedProcess, path: Path) -> None:
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(f"medsight: {path}: "), done.stderr


@pytest.mark.parametrize("payload", [b"", b"\x00" * 100], ids=["empty", "zeros"])
def test_real_check_prints_one_line(tmp_path, payload):
    data = tmp_path / "broken.npz"
    data.write_bytes(payload)
    assert_one_line_about(run_real(["check", data]), data)


def test_real_plan_and_train_write_nothing_for_bad_data(tmp_path):
    data = tmp_path / "broken.npz"
    data.write_bytes(WRONG_TYPED["pickle"])
    assert_one_line_about(run_real(["plan", data, "--out", tmp_path / "plan"]), data)
    assert_one_line_about(run_real(["train", data, "--out", tmp_path / "run", "--epochs", "1"]), data)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.npz"]
