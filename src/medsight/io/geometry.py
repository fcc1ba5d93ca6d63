"""Where a volume's voxels lie in the patient's world (mm): spacing, origin and direction, read from headers.

Spacing, origin and direction follow SimpleITK (x first). Voxel positions in medsight's boxes are continuous
array-order coordinates (z, y, x), voxel i covering [i, i + 1); ITK puts voxel centres at integer indices, so
continuous c is ITK index c - 0.5 on the reversed axes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medsight.errors import MedsightError


@dataclass(frozen=True)
class Geometry:
    size: tuple[int, ...]  # x first
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]

    @property
    def shape(self) -> tuple[int, ...]:
        """Array order (z, y, x)."""
        return tuple(reversed(self.size))

    @property
    def array_spacing(self) -> tuple[float, ...]:
        return tuple(reversed(self.spacing))

    def _matrix(self) -> np.ndarray:
        dims = len(self.spacing)
        return np.asarray(self.direction, float).reshape(dims, dims)

    def to_world(self, points: np.ndarray) -> np.ndarray:
        """(N, dims) continuous array-order coordinates -> (N, dims) world mm (x, y, z)."""
        points = np.asarray(points, float).reshape(-1, len(self.spacing))
        index = points[:, ::-1] - 0.5
        return np.asarray(self.origin) + (index * np.asarray(self.spacing)) @ self._matrix().T

    def to_voxel(self, world: np.ndarray) -> np.ndarray:
        """(N, dims) world mm (x, y, z) -> (N, dims) continuous array-order coordinates."""
        world = np.asarray(world, float).reshape(-1, len(self.spacing))
        index = np.linalg.solve(self._matrix(), (world - np.asarray(self.origin)).T).T / np.asarray(self.spacing)
        return index[:, ::-1] + 0.5


def read_geometry(path: Path) -> Geometry:
    """A volume's header only (no voxel data), through SimpleITK."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        line = next((s.strip() for s in str(exc).splitlines() if s.strip().startswith("Description")), "")
        raise MedsightError(path, f"cannot be read as a volume ({line.removeprefix('Description:').strip() or 'unreadable header'})") from None
    return Geometry(tuple(int(s) for s in reader.GetSize()), tuple(float(s) for s in reader.GetSpacing()),
                    tuple(float(s) for s in reader.GetOrigin()), tuple(float(s) for s in reader.GetDirection()))
