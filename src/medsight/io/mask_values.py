"""The values of masks paired with images by name (medsight.io.mask_pairs), and the labels they stand for.

Integer masks with values 0..20 keep them as labels; any other set of values (0/255, 0/128/255, colour-coded
RGB masks) is numbered in increasing order, 0 (black) always the background. A lossy JPEG mask is binarised at
half its range first (compression leaves values between). An optional ``labels.json`` beside the data names
the classes by mask value (``{"255": "polyp"}``); otherwise a binary set calls its class ``foreground``. Every
mask is read once to find its values, remembered by file size and modification time in
``~/.cache/medsight/masks/``, so a bad mask is named before any training.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from medsight.errors import MedsightError

LOSSY = (".jpg", ".jpeg")
IDENTITY_MAX = 20  # masks whose values all lie in 0..20 are label maps already
MAX_CLASSES = 32
COLOUR = 1 << 24  # a colour mask's values are COLOUR | 0xRRGGBB, apart from grey values of 8 or 16 bits


def raw_mask(image: Any, path: Path) -> np.ndarray:
    """A mask file -> (*spatial) int64 raw values: grey as stored, a colour mask as 0xRRGGBB, a JPEG binarised."""
    array = np.asarray(image.array)
    if array.shape[0] == 3 and image.layout == "rgb":
        if (array[0] == array[1]).all() and (array[1] == array[2]).all():
            array = array[:1]
        elif path.name.lower().endswith(LOSSY):
            array = array.max(axis=0, keepdims=True)
        else:
            array = array.astype(np.int64)
            colour = (array[0] << 16) | (array[1] << 8) | array[2]
            return np.where(colour > 0, colour | COLOUR, 0)  # black stays 0, the background
    if array.shape[0] != 1:
        raise MedsightError(path, f"has {array.shape[0]} channels; a mask holds one value per pixel")
    array = array[0]
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all() or (array != np.round(array)).any():
            raise MedsightError(path, "holds non-integer values; a mask holds one integer label per voxel")
    if path.name.lower().endswith(LOSSY):  # JPEG noise around 0 and 255
        array = np.where(array >= 128, 255, 0)
    if array.min() < 0:
        raise MedsightError(path, f"holds a negative value ({array.min()}); mask values are 0 or more")
    return array.astype(np.int64)


def _cache_file(root: Path) -> Path:
    key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "medsight" / "masks" / f"{key}.json"


def mask_values(masks: list[Path], root: Path) -> dict[str, list[int]]:
    """Each mask file's raw values (its path -> sorted values), read once and remembered by size and mtime."""
    from medsight.io.images import read_image

    cache_file = _cache_file(root)
    try:
        known = json.loads(cache_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = {}
    out, changed = {}, False
    for mask in masks:
        stat = mask.stat()
        stamp = [stat.st_size, stat.st_mtime_ns]
        entry = known.get(str(mask))
        if entry and entry[0] == stamp:
            out[str(mask)] = entry[1]
            continue
        values = np.unique(raw_mask(read_image(mask), mask)).tolist()
        if len(values) > 4 * MAX_CLASSES:
            raise MedsightError(mask, f"holds {len(values)} distinct values: is it an image rather than a mask?")
        out[str(mask)] = values
        known[str(mask)] = [stamp, values]
        changed = True
    if changed:
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            temporary = cache_file.with_suffix(f".{os.getpid()}.tmp")
            temporary.write_text(json.dumps(known), encoding="utf-8")
            temporary.replace(cache_file)
        except OSError:
            pass  # a read-only home only costs reading the masks again next time
    return out


def mask_coding(values: set[int], names_file: Path | None, root: Path) -> tuple[dict[int, int], dict[int, str]]:
    """(raw value -> label value, label value -> name) for the values found in the masks."""
    values = set(values) | {0}
    if len(values) > MAX_CLASSES:
        raise MedsightError(root, f"has masks with {len(values)} distinct values between them; a mask holds a value "
                                  f"per class, at most {MAX_CLASSES} (are images among the masks?)")
    if max(values) <= IDENTITY_MAX:
        mapping = {v: v for v in sorted(values)}
    else:
        mapping = {v: k for k, v in enumerate(sorted(values))}
    names = {0: "background"}
    given = _names(names_file) if names_file else {}
    for raw, label in mapping.items():
        if label == 0:
            continue
        if raw in given:
            names[label] = given[raw]
        elif len(mapping) == 2:
            names[label] = "foreground"
        elif raw & COLOUR:
            names[label] = "rgb_{}_{}_{}".format((raw >> 16) & 255, (raw >> 8) & 255, raw & 255)
        else:
            names[label] = f"class_{raw}"
    unused = sorted(set(given) - set(mapping))
    if unused:
        raise MedsightError(names_file, f"names mask value(s) {unused} that no mask holds (found {sorted(mapping)})")
    return mapping, names


def _names(path: Path) -> dict[int, str]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MedsightError(path, f"is not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise MedsightError(path, 'must map mask values to names, e.g. {"255": "polyp"}')
    out = {}
    for key, name in raw.items():
        try:
            out[int(key)] = str(name)
        except (TypeError, ValueError):
            raise MedsightError(path, f"key {key!r} is not a mask value (an integer)") from None
    return out


def adopt_coding(dataset: Any, info: dict[str, Any]) -> None:
    """Read another folder's masks with the values a run was trained on (a test folder may lack a class, which
    would renumber the rest); a mask value the run never saw is an error naming the folder."""
    trained = {int(k): int(v) for k, v in info["mask_coding"].items()}
    unknown = sorted(set(dataset.mask_coding) - set(trained))
    if unknown:
        raise MedsightError(dataset.path, f"has mask value(s) {unknown[:5]} that the run's training masks did not "
                                          f"have (they had {sorted(trained)})")
    dataset.mask_coding = trained
    dataset.labels = {int(k): v for k, v in info.get("labels", {}).items()} or dataset.labels
    dataset.classes = [dataset.labels[k] for k in sorted(dataset.labels)]


def decode_mask(paths: list[Path], coding: dict[int, int]) -> Any:
    """The label map of a case from its mask files: raw values coded as labels, several masks merged (maximum)."""
    from medsight.io.images import read_image

    merged, first = None, None
    lookup = {int(k): int(v) for k, v in coding.items()}
    for path in paths:
        image = read_image(path)
        raw = raw_mask(image, path)
        unknown = sorted(set(np.unique(raw).tolist()) - set(lookup))
        if unknown:
            raise MedsightError(path, f"holds mask value(s) {unknown[:5]} that the other masks did not have when the "
                                      f"data set was read (known: {sorted(lookup)})")
        keys = np.asarray(sorted(lookup))
        coded = np.asarray([lookup[k] for k in keys])[np.searchsorted(keys, raw)]
        if merged is None:
            merged, first = coded, image
        elif coded.shape != merged.shape:
            raise MedsightError(path, f"has shape {coded.shape} but {paths[0].name} has {merged.shape}")
        else:
            merged = np.maximum(merged, coded)
    first.array = merged[None].astype(np.uint8)
    first.layout = "grey"
    return first
