"""Pictures for people: an image slice in grey or colour, a heat map or mask over it, a caption, as PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

# Small inputs (28 px MedMNIST) are enlarged so that a caption and a heat map can be read.
MIN_SIDE = 256


def display_window(image: np.ndarray) -> tuple[float, float]:
    """The 1st-99th percentile of an image or volume: one contrast for all its slices."""
    low, high = np.percentile(np.asarray(image, dtype=np.float32), [1, 99])
    return float(low), float(high)


def display_rgb(image: np.ndarray, window: tuple[float, float] | None = None) -> np.ndarray:
    """A (C, H, W) image -> (H, W, 3) uint8, contrast from window or its 1st-99th percentile (RGB kept as colour)."""
    image = np.asarray(image, dtype=np.float32)
    low, high = window or display_window(image)
    if high <= low:
        low, high = float(image.min()), float(image.max()) + 1e-6
    scaled = np.clip((image - low) / (high - low), 0, 1)
    rgb = np.repeat(scaled[:1], 3, axis=0) if scaled.shape[0] != 3 else scaled
    return (np.moveaxis(rgb, 0, -1) * 255).astype(np.uint8)


def jet(values: np.ndarray) -> np.ndarray:
    """The jet colour map of values in [0, 1] -> (..., 3) floats in [0, 1]."""
    v = np.clip(values, 0, 1)[..., None]
    return np.clip(1.5 - np.abs(4 * v - np.array([3.0, 2.0, 1.0])), 0, 1)


def blend_heat(rgb: np.ndarray, heat: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Lay a [0, 1] heat map (H, W) over an (H, W, 3) uint8 picture; cold areas stay mostly visible."""
    weight = alpha * np.clip(heat, 0, 1)[..., None] ** 0.5
    mixed = rgb.astype(np.float32) * (1 - weight) + jet(heat) * 255 * weight
    return mixed.astype(np.uint8)


# Label colours (label k gets LABEL_COLOURS[(k - 1) % len]); distinguishable for common colour blindness.
LABEL_COLOURS = ((230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66), (0, 114, 178), (213, 94, 0),
                 (204, 121, 167))


def blend_labels(rgb: np.ndarray, labels: np.ndarray, colours: Sequence[tuple[int, int, int]], alpha: float = 0.45) -> np.ndarray:
    """Colour each label > 0 of an (H, W) label map over the picture (label k gets colours[k - 1])."""
    out = rgb.astype(np.float32)
    for k, colour in enumerate(colours, start=1):
        mask = labels == k
        out[mask] = out[mask] * (1 - alpha) + np.array(colour, np.float32) * alpha
    return out.astype(np.uint8)


def save_picture(rgb: np.ndarray, path: Path, caption: str | None = None) -> Path:
    """Write an (H, W, 3) picture as PNG, enlarged (nearest neighbour) when small, with a caption bar on top."""
    from PIL import Image, ImageDraw

    picture = Image.fromarray(rgb)
    scale = max(1, int(np.ceil(MIN_SIDE / max(1, min(rgb.shape[:2])))))
    if scale > 1:
        picture = picture.resize((rgb.shape[1] * scale, rgb.shape[0] * scale), Image.NEAREST)
    if caption:
        bar = 18
        framed = Image.new("RGB", (picture.width, picture.height + bar), (0, 0, 0))
        framed.paste(picture, (0, bar))
        ImageDraw.Draw(framed).text((4, 3), caption, fill=(255, 255, 255))
        picture = framed
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(path, format="PNG")
    return path


def key_slices(depth: int, heat: np.ndarray | None = None) -> list[int]:
    """Slices to show of a volume: the middle one and, with a heat map (Z, Y, X), the most activated one."""
    chosen = [depth // 2]
    if heat is not None:
        hottest = int(np.argmax(heat.reshape(depth, -1).sum(1)))
        if hottest not in chosen:
            chosen.append(hottest)
    return chosen


def resize_map(heat: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Resample a heat map (spatial) to another spatial shape, linearly."""
    import torch
    import torch.nn.functional as F

    if tuple(heat.shape) == tuple(shape):
        return heat.astype(np.float32)
    mode = "bilinear" if len(shape) == 2 else "trilinear"
    tensor = torch.from_numpy(np.ascontiguousarray(heat, dtype=np.float32))[None, None]
    return F.interpolate(tensor, size=tuple(shape), mode=mode, align_corners=False)[0, 0].numpy()
