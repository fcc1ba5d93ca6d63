"""Planner rules: target spacing with the anisotropy rule, patch budget, topology, normalisation."""

from __future__ import annotations

import numpy as np
import pytest

from medsight.tasks.segmentation.plan import (PATCH_VOXELS, make_segmentation_plan, normalization, shrink_patch,
                                              target_spacing, topology)


def test_isotropic_spacing_is_the_median():
    spacings = np.array([[1.0, 1.0, 1.0], [1.2, 1.0, 1.0], [0.8, 1.0, 1.0]])
    assert target_spacing(spacings, np.full((3, 3), 64)) == [1.0, 1.0, 1.0]


def test_anisotropic_axis_takes_its_10th_percentile():
    # thick slices (5 mm, a few 3 mm) and few of them: nnU-Net plans the 10th percentile, not the median
    spacings = np.array([[5.0, 0.8, 0.8]] * 8 + [[3.0, 0.8, 0.8]] * 2)
    shapes = np.array([[20, 256, 256]] * 10)
    assert target_spacing(spacings, shapes) == pytest.approx([3.0, 0.8, 0.8])
    # the same spacings with many slices stay at the median
    assert target_spacing(spacings, np.array([[300, 256, 256]] * 10))[0] == 5.0


def test_patch_fits_the_budget_and_shrinks_the_longest_axis():
    patch = shrink_patch([200, 100, 100], [1.0, 1.0, 1.0], PATCH_VOXELS[3])
    assert np.prod(patch) <= PATCH_VOXELS[3] and patch[0] < 200 and patch[0] >= patch[1]
    assert shrink_patch([35, 49, 35], [1, 1, 1], PATCH_VOXELS[3]) == [35, 49, 35]


def test_topology_matches_nnunet_for_hippocampus():
    patch, kernels, strides = topology([35, 49, 35], [1.0, 1.0, 1.0])
    assert patch == [40, 56, 40]  # nnU-Net's 3d_fullres patch for Task04
    assert strides == [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2]]
    assert all(k == [3, 3, 3] for k in kernels)


def test_topology_skips_pooling_and_3x3_on_thick_slices():
    patch, kernels, strides = topology([16, 128, 128], [4.0, 1.0, 1.0])
    assert strides[1] == [1, 2, 2] and kernels[0] == [1, 3, 3]
    assert kernels[-1][0] == 3  # once in-plane pooling caught up, the slice axis gets 3-voxel kernels
    for axis in range(3):
        assert patch[axis] % int(np.prod([s[axis] for s in strides])) == 0
        assert patch[axis] / np.prod([s[axis] for s in strides]) >= 4


def test_normalisation_ct_versus_other():
    stats = {"mean": 40.0, "std": 20.0, "percentile_00_5": -100.0, "percentile_99_5": 200.0}
    ct, mri = normalization(["CT", "T2"], [stats, stats])
    assert ct == {"scheme": "ct", "clip": [-100.0, 200.0], "mean": 40.0, "std": 20.0}
    assert mri == {"scheme": "zscore"}


def test_plan_of_a_data_set(tiny3d):
    from medsight.io.segmentation import read_segmentation

    plan = make_segmentation_plan(read_segmentation(tiny3d))
    assert plan["spatial_dims"] == 3 and plan["num_classes"] == 3 and plan["patch_size"] == [16, 16, 16]
    assert plan["fingerprint"]["class_volume_mm3"] == {"a": 216.0, "b": 27.0}
    assert 2 <= plan["batch_size"] <= 8 and plan["normalization"] == [{"scheme": "zscore"}]
