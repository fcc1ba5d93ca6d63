"""A volume resampled (and normalised) a few planes at a time, straight into a .npy file on disk.

Trilinear interpolation is linear along z of bilinear interpolation in each plane, so the output can be made
slab by slab: each output plane needs the two input planes around its source position, resampled in plane.
The result equals ``F.interpolate(..., mode="trilinear", align_corners=False)`` (up to float rounding) while
holding only the input (in its own dtype, int16 for CT) and one slab of float32 planes: resampling a
512 x 512 x 300 scan no longer needs its float32 copy, its resampled copy and the normalised one at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

SLAB_PLANES = 8  # output planes made per step


def source_planes(size: int, new_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each output plane: the two input planes and the weight of the second (PyTorch's linear rule,
    align_corners=False: source = (i + 0.5) * size / new_size - 0.5, clamped at 0)."""
    source = np.maximum((np.arange(new_size) + 0.5) * (size / new_size) - 0.5, 0.0)
    low = np.minimum(np.floor(source).astype(np.int64), size - 1)
    high = np.minimum(low + 1, size - 1)
    return low, high, (source - low).astype(np.float32)


def write_resampled(image: np.ndarray, shape: Sequence[int], path: Path,
                    transform: Callable[[torch.Tensor, int], torch.Tensor] | None = None) -> tuple[int, ...]:
    """(C, Z, Y, X) array (any dtype, may be memory-mapped) -> float32 (C, *shape) .npy at path.

    transform(planes, channel) is applied to each resampled slab (planes: (n, Y', X') float32), e.g. the
    plan's intensity normalisation, which works voxel by voxel.
    """
    channels, size = image.shape[0], image.shape[1]
    new_z, new_y, new_x = (int(s) for s in shape)
    out_shape = (channels, new_z, new_y, new_x)
    low, high, weight = source_planes(size, new_z)
    with open(path, "wb") as handle:
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False,
                  "shape": out_shape}
        np.lib.format.write_array_header_1_0(handle, header)
        for channel in range(channels):  # channel-major, as the array is laid out in the file
            for start in range(0, new_z, SLAB_PLANES):
                stop = min(new_z, start + SLAB_PLANES)
                first, last = int(low[start:stop].min()), int(high[start:stop].max())
                planes = torch.from_numpy(np.asarray(image[channel, first:last + 1], dtype=np.float32))
                if planes.shape[1:] != (new_y, new_x):
                    planes = F.interpolate(planes[:, None], size=(new_y, new_x), mode="bilinear",
                                           align_corners=False)[:, 0]
                w = torch.from_numpy(weight[start:stop])[:, None, None]
                slab = planes[low[start:stop] - first] * (1 - w) + planes[high[start:stop] - first] * w
                if transform is not None:
                    slab = transform(slab, channel)
                handle.write(np.ascontiguousarray(slab.numpy(), dtype=np.float32).tobytes())
    return out_shape
