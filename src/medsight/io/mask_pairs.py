"""Segmentation data without a dataset.json: each image paired with its mask by name, as users bring it.

Layouts, the first that matches:

- **Side by side**: an image folder and a mask folder (``images/`` and ``masks/``, ``imagesTr/`` and
  ``labelsTr/``, ``img/`` and ``gt/``, ``volumes/`` and ``segmentations/``, ISIC's ``..._Input`` and
  ``..._GroundTruth``: see IMAGE_WORDS, MASK_WORDS) holding the same names (an image may be a folder of DICOM
  slices, as hospitals export a series by patient); a mask may add a mask ending
  (``_mask``, ``_segmentation``) and an image nnU-Net's ``_0000``. Subfolders are followed alike. Splits come
  from the folders' names (``imagesTr``/``imagesTs``, ``..._Training_...``), from a split folder above them
  (``train/images`` and ``train/masks``) or below them (``images/train`` and ``masks/train``).
- **Case folders**: a folder per case holding its image files and one mask (KiTS' ``case_00000/imaging.nii.gz``
  and ``segmentation.nii.gz``; BraTS' ``<case>_flair``, ``_t1``, ``_t1ce``, ``_t2`` and ``_seg``): each image file
  is a channel, named by what follows the case name, in the same order for every case. Or a folder per case
  holding ``images/`` with its picture and ``masks/`` with a mask per object, merged (the Data Science Bowl
  2018 nuclei).
- **One folder**: an image and its mask beside each other, the mask named ``<image stem><ending>``
  (MASK_ENDINGS: BUSI's ``_mask``, ISIC's ``_segmentation``, ``_seg``, ``_label``, ``_gt``;
  CHASE_DB1's first observer ``_1stHO``, whose second observer ``_2ndHO`` is left aside), in the folder or
  its subfolders (BUSI's ``benign/``, ``malignant/``, ``normal/``). Several masks of one image (BUSI's
  ``_mask_1``) are merged. LiTS's ``volume-N.nii`` beside ``segmentation-N.nii`` too. An image without a
  mask here is left out and said so (ACDC's ``<patient>_4d`` beside ``_frame01`` and ``_frame01_gt``).

Mask values and the labels they stand for: medsight.io.mask_values.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medsight.errors import MedsightError
from medsight.io.images import is_hidden, strip_suffix, suffix_of
from medsight.io.labels_csv import SPLIT_FOLDERS, name_words

PAIR_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd", ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")
IMAGE_WORDS = {"images", "image", "imgs", "img", "volumes", "volume", "scans", "scan", "inputs", "input",
               "originals", "original", "frames", "photos", "pictures"}
MASK_WORDS = {"masks", "mask", "labels", "label", "segmentations", "segmentation", "segs", "seg", "gt", "groundtruth",
              "ground_truth", "manual", "manual1", "annotations", "annotation", "targets", "target"}
SPLIT_WORDS = {"tr": "train", "ts": "test", **SPLIT_FOLDERS}
# compared in lower case; "_mask_1" (a second mask of the same image) is matched by the optional number
MASK_ENDINGS = ("_segmentation", "_mask", "_masks", "_seg", "_label", "_labels", "_gt", "_1stho", "_manual1",
                "_annotation")
OTHER_OBSERVER = ("_2ndho", "_manual2")  # a second reader's masks: not a case, not used
MASK_PATTERN = re.compile(r"(.+?)(" + "|".join(MASK_ENDINGS) + r")(?:[_ ]?\(?\d+\)?)?", re.IGNORECASE)
LITS = re.compile(r"segmentation-(.+)", re.IGNORECASE)  # LiTS: segmentation-N beside volume-N


@dataclass
class Pair:
    """One case: its image, its mask files (merged when several; none: unlabelled) and its split."""

    case_id: str
    image: Path
    masks: list[Path] = field(default_factory=list)
    split: str | None = None
    channels: list[Path] = field(default_factory=list)  # case folders: every image file, in channel order


def split_name(path: Path) -> tuple[str, str]:
    """('case_1', '.nii.gz') for case_1.nii.gz; ('', '') for a file of no image ending."""
    suffix = suffix_of(path)
    return (strip_suffix(path), suffix) if suffix in PAIR_SUFFIXES else ("", "")


def _files(folder: Path, series: bool = False) -> list[Path]:
    """Image files under a folder, hidden ones (macOS '._' copies, .DS_Store folders) left out; with `series`,
    a folder of DICOM slices is one image (a CT or MR series exported by patient), named by the folder."""
    from medsight.io.images import is_dicom_series

    out = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not is_hidden(d))
        if series and Path(root) != folder and is_dicom_series(Path(root)):
            dirs[:] = []
            out.append(Path(root))
            continue
        out += [Path(root) / n for n in sorted(names) if not is_hidden(n) and split_name(Path(n))[1]]
    return out


def _stem(path: Path) -> str:
    return path.name if path.is_dir() else split_name(path)[0]


def _role(folder: Path) -> tuple[str | None, str | None]:
    """('images' | 'masks' | None, the split the name gives or None) of a folder, from the words of its name."""
    words = name_words(folder.name)
    compact = re.sub(r"[^a-z0-9]", "", folder.name.lower())
    split = next((SPLIT_WORDS[w] for w in words if w in SPLIT_WORDS), None)
    if any(w in MASK_WORDS for w in words) or "groundtruth" in compact or folder.name.lower() in MASK_WORDS:
        return "masks", split
    if any(w in IMAGE_WORDS for w in words) or folder.name.lower() in IMAGE_WORDS:
        return "images", split
    return None, split


def _mask_rank(folder: Path) -> int:
    """Which of several mask folders holds the annotation: a reader's (DRIVE's 1st_manual, gt, labels) before a
    plain mask/ (DRIVE's mask/ is the field of view), the first observer before the second."""
    words = set(name_words(folder.name))
    rank = 2 if words & (MASK_WORDS - {"mask", "masks"}) or "groundtruth" in folder.name.lower() else 1
    return rank - 2 * bool(words & {"2nd", "nd", "second", "manual2", "2"})


def _couples(root: Path) -> list[tuple[Path, Path | None, str | None]]:
    """(image folder, its mask folder or None, split) side by side in root."""
    folders = [c for c in sorted(root.iterdir()) if c.is_dir() and not is_hidden(c.name)]
    roles = {c: _role(c) for c in folders}
    images = [c for c in folders if roles[c][0] == "images"]
    masks = [c for c in folders if roles[c][0] == "masks"]
    if not images or not masks:
        return []
    if len(images) == 1 and len(masks) > 1:  # DRIVE: 1st_manual/, 2nd_manual/ and mask/ (the field of view)
        best = max(_mask_rank(m) for m in masks)
        masks = [m for m in masks if _mask_rank(m) == best][:1] if best >= 2 else masks
    if len(images) == 1 and len(masks) == 1:
        return [(images[0], masks[0], roles[images[0]][1])]
    out = []
    for folder in images:
        split = roles[folder][1]
        same = [m for m in masks if roles[m][1] == split]
        out.append((folder, same[0] if len(same) == 1 else None, split))
    return out if any(m is not None for _, m, _ in out) else []


def _layout(root: Path) -> tuple[str, list[tuple[Path, Path | None, str | None]]]:
    """('side', couples), ('side', couples under split folders), ('one', []) or ('', [])."""
    couples = _couples(root)
    if couples:
        return "side", couples
    above = []
    for child in sorted(root.iterdir()):
        split = SPLIT_FOLDERS.get(child.name.lower())
        if child.is_dir() and split:
            above += [(i, m, split) for i, m, _ in _couples(child)]
    if any(m is not None for _, m, _ in above):
        return "side", above
    if _case_folders(root):
        return "cases", []
    return ("one", []) if _one_folder_pairs(root, probe=True) else ("", [])


def is_mask_pairs(path: Path) -> bool:
    """A folder of images paired with masks by name (no dataset.json: that is an nnU-Net folder)."""
    path = Path(path)
    if not path.is_dir() or (path / "dataset.json").is_file():
        return False
    kind, couples = _layout(path)
    if kind in ("one", "cases"):
        return True
    return kind == "side" and any(_side_pairs(i, m, s, probe=True) for i, m, s in couples if m is not None)


# pairing ---------------------------------------------------------------------------------------------------------
def _leading_number(stem: str) -> str:
    """'21_training' -> '21', '01_manual1' -> '01'; '' when the name does not begin with a number and a separator."""
    found = re.match(r"(\d+)[_\- ]", stem)
    return found.group(1) if found else ""


def _image_key(stem: str) -> str:
    """nnU-Net's channel number is not part of the case name: case_0000 -> case."""
    return stem[:-5] if re.fullmatch(r".+_\d{4}", stem) else stem


def _mask_base(stem: str) -> str | None:
    """The image stem a mask name points at: 'x_mask' -> 'x', 'x_mask_1' -> 'x', 'segmentation-3' -> 'volume-3'."""
    lits = LITS.fullmatch(stem)
    if lits:
        return f"volume-{lits.group(1)}"
    found = MASK_PATTERN.fullmatch(stem)
    return found.group(1) if found else None


def _case_id(relative: Path, stem: str) -> str:
    """Subfolders become part of the id ('benign/x' -> 'benign__x'), so results can be written as files."""
    return "__".join([*relative.parts, stem]) if relative.parts else stem


def _split_of(relative: Path, given: str | None) -> tuple[Path, str | None]:
    """A split folder below the image folder (images/train/...) gives the split; it is not part of the id."""
    if relative.parts and relative.parts[0].lower() in SPLIT_FOLDERS:
        return Path(*relative.parts[1:]), SPLIT_FOLDERS[relative.parts[0].lower()]
    return relative, given


def _side_pairs(image_dir: Path, mask_dir: Path | None, split: str | None, probe: bool = False) -> list[Pair]:
    masks: dict[tuple[str, str], list[Path]] = {}
    if mask_dir is not None:
        for file in _files(mask_dir):
            relative = file.parent.relative_to(mask_dir)
            stem = split_name(file)[0]
            masks.setdefault((relative.as_posix(), stem.lower()), []).append(file)
    by_base: dict[tuple[str, str], list[Path]] = {}  # x_mask.png, x_mask_1.png under x
    for (where, name), files in masks.items():
        base = _mask_base(name)
        if base:
            by_base.setdefault((where, base.lower()), []).extend(files)
    # DRIVE names 21_training.tif's mask 21_manual1.gif: a leading number shared by one image and one mask
    by_number: dict[tuple[str, str], list[list[Path]]] = {}
    for (where, name), files in masks.items():
        number = _leading_number(name)
        if number:
            by_number.setdefault((where, number), []).append(files)
    images = _files(image_dir, series=True)
    image_numbers = [(file.parent.relative_to(image_dir).as_posix(), _leading_number(_stem(file))) for file in images]
    pairs: list[Pair] = []
    used: set[Path] = set()
    for file in images:
        relative = file.parent.relative_to(image_dir)
        stem = _stem(file)
        if re.fullmatch(r".+_\d{4}", stem) and not stem.endswith("_0000"):
            raise MedsightError(file, "is a second channel of an nnU-Net case: several channels need a dataset.json "
                                      "naming them (channel_names)")
        key = _image_key(stem)
        found = masks.get((relative.as_posix(), key.lower())) or by_base.get((relative.as_posix(), key.lower()), [])
        number = (relative.as_posix(), _leading_number(key))
        if not found and number[1] and len(by_number.get(number, [])) == 1 and image_numbers.count(number) == 1:
            found = by_number[number][0]
        used.update(found)
        inner, own_split = _split_of(relative, split)
        pairs.append(Pair(_case_id(inner, key), file, sorted(found), own_split))
        if probe and found:
            return pairs
    if probe:
        return []
    if mask_dir is not None:
        stray = [f for files in masks.values() for f in files if f not in used]
        if stray:
            raise MedsightError(stray[0], f"is a mask without an image: expected {image_dir.name}/"
                                          f"{stray[0].parent.relative_to(mask_dir) / split_name(stray[0])[0]}"
                                          f"{split_name(stray[0])[1]}")
    return pairs


def _one_folder_pairs(root: Path, probe: bool = False) -> list[Pair]:
    files = _files(root)
    by_folder: dict[Path, dict[str, Path]] = {}
    for file in files:
        by_folder.setdefault(file.parent, {})[split_name(file)[0].lower()] = file
    masks_of: dict[Path, list[Path]] = {}
    aside: set[Path] = set()
    for file in files:
        stem = split_name(file)[0]
        if stem.lower().endswith(OTHER_OBSERVER) and by_folder[file.parent].get(stem.lower()[:-6]):
            aside.add(file)
            continue
        base = _mask_base(stem)
        image = by_folder[file.parent].get(base.lower()) if base else None
        if image is not None and image != file:
            masks_of.setdefault(image, []).append(file)
            if probe:
                return [Pair(stem, image, [file])]
    if probe:
        return []
    mask_files = {m for found in masks_of.values() for m in found}
    pairs = []
    for file in files:
        if file in mask_files or file in aside:
            continue
        relative = file.parent.relative_to(root)
        inner, split = _split_of(relative, None)
        pairs.append(Pair(_case_id(inner, split_name(file)[0]), file, sorted(masks_of.get(file, [])), split))
    return pairs


def _is_case_mask(stem: str, folder: str) -> bool:
    """A case folder's mask: named by a mask word alone (KiTS' segmentation.nii.gz) or after the case
    (BraTS' BraTS20_Training_001_seg.nii.gz)."""
    lower = stem.lower()
    return lower in MASK_WORDS or any(lower.endswith(sep + word) for word in MASK_WORDS for sep in "_-")


def _channel_name(stem: str, folder: str) -> str:
    """BraTS20_Training_001_flair in BraTS20_Training_001/ -> 'flair'; imaging -> 'imaging'."""
    lower, prefix = stem.lower(), folder.lower()
    return stem[len(prefix):].lstrip("_-") or stem if lower.startswith(prefix) and len(stem) > len(prefix) else stem


def _case_contents(folder: Path) -> tuple[list[Path], list[Path], bool] | None:
    """(image files, mask files, whether each image file is a channel) of a case folder, or None when the
    folder is no case. Image files with one mask beside them (BraTS, KiTS) are channels; an images/ and a
    masks/ folder inside (the Data Science Bowl 2018 nuclei: one picture, a mask per nucleus) hold one image
    and masks that are merged."""
    files = [f for f in sorted(folder.iterdir()) if f.is_file() and not is_hidden(f.name) and split_name(f)[1]]
    if not files:
        inner = {_role(d)[0]: d for d in sorted(folder.iterdir()) if d.is_dir() and not is_hidden(d.name)}
        if "images" not in inner:
            return None
        images = _files(inner["images"])
        masks = _files(inner["masks"]) if "masks" in inner else []
        return (images, masks, False) if len(images) == 1 else None
    stems = {split_name(f)[0].lower() for f in files}
    if any((_mask_base(split_name(f)[0]) or "").lower() in stems for f in files):
        return None  # a mask named after an image beside it: image + mask pairs (BUSI's class folders)
    masks = [f for f in files if _is_case_mask(split_name(f)[0], folder.name)]
    if len(masks) > 1 or len(masks) == len(files):
        return None  # several masks or no image: not a case
    return [f for f in files if f not in masks], masks, True


def _case_folders(root: Path) -> list[tuple[Path, str | None, tuple[list[Path], list[Path], bool]]]:
    """The case folders of root (or of its split folders) with their split and contents; empty unless every
    folder holding images is a case, at least one of them with a mask."""
    top = [c for c in sorted(root.iterdir()) if not is_hidden(c.name)]
    if any(c.is_file() and split_name(c)[1] for c in top):
        return []
    candidates = []
    for child in (c for c in top if c.is_dir()):
        split = SPLIT_FOLDERS.get(child.name.lower())
        inner = [c for c in sorted(child.iterdir()) if c.is_dir() and not is_hidden(c.name)] if split else [child]
        candidates += [(folder, split) for folder in inner]
    found = []
    for folder, split in candidates:
        if not any(folder.iterdir()):
            continue
        contents = _case_contents(folder)
        if contents is None:
            return []
        found.append((folder, split, contents))
    return found if any(masks for _, _, (_, masks, _) in found) else []


def _case_folder_pairs(root: Path) -> list[Pair]:
    pairs, reference = [], None
    for folder, split, (images, masks, as_channels) in _case_folders(root):
        if not as_channels:
            pairs.append(Pair(folder.name, images[0], masks, split))
            continue
        channels = {_channel_name(split_name(f)[0], folder.name): f for f in images}
        names = sorted(channels)
        if reference is None:
            reference = (folder, names)
        elif names != reference[1]:
            raise MedsightError(folder, f"holds the channels {names} but {reference[0].name} holds {reference[1]}; "
                                        "every case folder needs the same image files")
        ordered = [channels[n] for n in names]
        pairs.append(Pair(folder.name, ordered[0], masks, split, ordered))
    return pairs


def channel_names(pairs: list[Pair]) -> list[str] | None:
    """The channel names of case folders (from the first case's file names), or None for one file a case."""
    first = next((p for p in pairs if p.channels), None)
    if first is None:
        return None
    return [_channel_name(split_name(f)[0], first.image.parent.name) for f in first.channels]


def find_pairs(root: Path) -> list[Pair]:
    """Every case of a paired folder, labelled or not, with the split its folders give."""
    return _find_pairs(root)[1]


def _find_pairs(root: Path) -> tuple[str, list[Pair]]:
    kind, couples = _layout(root)
    if kind == "side":
        pairs = [p for i, m, s in couples for p in _side_pairs(i, m, s)]
    elif kind == "cases":
        pairs = _case_folder_pairs(root)
    elif kind == "one":
        pairs = _one_folder_pairs(root)
    else:
        raise MedsightError(root, "holds no images paired with masks")
    unlabelled = [p for p in pairs if not p.masks]
    left_out = []
    for pair in unlabelled:  # an image without a mask is only a test image of a split that has no masks at all
        if kind == "one" and pair.split != "test":
            left_out.append(pair)  # beside masked images, another kind of file (ACDC's <patient>_4d.nii.gz)
        elif pair.split != "test" or any(q.masks for q in pairs if q.split == "test"):
            hint = ("a mask folder of the same names" if kind == "side" else
                    f"a mask file such as {pair.case_id}_seg{split_name(pair.image)[1]} in {pair.image.parent.name}/"
                    if kind == "cases" else f"{pair.image.parent.name}/{split_name(pair.image)[0]}_mask{split_name(pair.image)[1]} beside it")
            raise MedsightError(pair.image, f"has no mask (expected {hint})")
    ids = [p.case_id for p in pairs]
    if len(set(ids)) != len(ids):
        twice = next(i for i in ids if ids.count(i) > 1)
        files = [str(p.image) for p in pairs if p.case_id == twice][:2]
        raise MedsightError(root, f"has two images of case {twice!r} ({files[0]}, {files[1]}); give them distinct names")
    return kind, [p for p in pairs if p not in left_out], [p.image for p in left_out]


def read_mask_pairs(root: Path, fold: int = 0):
    """Read a folder of images paired with masks as a SegmentationDataset (labels from the masks' values)."""
    from medsight.data.splits import assign_splits, rarest_present
    from medsight.io.images import read_image
    from medsight.io.mask_values import mask_coding, mask_values
    from medsight.io.segmentation import SegmentationCase, SegmentationDataset

    root = Path(root)
    kind, pairs, left_out = _find_pairs(root)
    labelled = [p for p in pairs if p.masks]
    if not labelled:
        raise MedsightError(root, "holds no image with a mask")
    raw = mask_values([m for p in labelled for m in p.masks], root)
    names_file = root / "labels.json"
    mapping, labels = mask_coding({v for found in raw.values() for v in found}, names_file if names_file.is_file() else None,
                                  root)
    first = read_image(labelled[0].image)
    dims = first.spatial_dims
    channels = channel_names(pairs) or (["R", "G", "B"] if first.layout == "rgb" else
                                        [f"channel_{c}" for c in range(first.array.shape[0])] if first.array.shape[0] > 1
                                        else ["image"])
    cases = [SegmentationCase(p.case_id, p.channels or [p.image], p.masks[0] if p.masks else None,
                              "test" if p.split == "test" else "train") for p in pairs]
    for case, pair in zip(cases, pairs):
        case.extra_labels = pair.masks[1:]
    splits: dict[str, list[int]] = {"train": [], "val": [], "test": [], "unlabelled": []}
    for index, pair in enumerate(pairs):
        part = "unlabelled" if not pair.masks else pair.split or "train"
        splits[part].append(index)
    order = sorted(labels)
    present = [sorted({order.index(mapping[v]) for m in p.masks for v in raw[str(m)] if mapping[v] != 0}) for p in pairs]
    dataset = SegmentationDataset(
        path=root, format="mask_pairs", task="segmentation", spatial_dims=dims,
        splits={k: np.asarray(v, dtype=int) for k, v in splits.items() if v}, case_ids=[p.case_id for p in pairs],
        channels=channels, classes=[labels[k] for k in order], cases=cases, labels=labels,
        file_ending=split_name(labelled[0].image)[1] or ".nii.gz", modalities=channels, fold=fold,
        groups=[None] * len(pairs), mask_coding=mapping, mask_note=_note(pairs, mapping, labels, left_out),
        mask_layout=kind)
    assign_splits(dataset, rarest_present(present, len(order)), fold)
    return dataset


def _note(pairs: list[Pair], mapping: dict[int, int], labels: dict[int, str], left_out: list[Path]) -> str:
    shown = ", ".join(f"{raw}->{labels[label]}" for raw, label in mapping.items() if raw != label or raw == 0)
    merged = sum(1 for p in pairs if len(p.masks) > 1)
    return (f"images paired with masks by name; mask values {shown or 'used as labels'}"
            + (f"; {merged} image(s) with several masks, merged" if merged else "")
            + (f"; {len(left_out)} image(s) without a mask left out (such as {left_out[0].name})" if left_out else ""))
