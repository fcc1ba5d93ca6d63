"""Small lesions in training: positive patches drawn by box size, never from a case without boxes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medsight.tasks.detection.data import Case, EpochBatches, positive_draws


def cases_of_sizes() -> list[Case]:
    """Three 2D cases: one box of side 2, one of side 8 (with a 2 x 8 box, geometric mean 4), and no box.

    Each pixel holds 1000 * case + 32 * row + column, so a patch's first pixel tells where it was cut."""
    ramp = torch.arange(32 * 32, dtype=torch.float32).reshape(1, 32, 32)
    return [Case(ramp, np.array([[10.0, 10, 12, 12]]), np.array([0])),
            Case(ramp + 1000, np.array([[4.0, 4, 12, 12], [20.0, 20, 22, 28]]), np.array([0, 0])),
            Case(ramp + 2000, np.zeros((0, 4)), np.zeros(0, int))]


def test_boxes_are_drawn_in_inverse_proportion_to_their_size_and_empty_cases_never():
    owners, weights = positive_draws(cases_of_sizes(), 1.0)
    np.testing.assert_array_equal(owners, [[0, 0], [1, 0], [1, 1]])
    # sizes 2, 8 and sqrt(2 * 8) = 4: weights 1/2, 1/8, 1/4 out of 7/8
    np.testing.assert_allclose(weights.numpy(), [4 / 7, 1 / 7, 2 / 7])
    _, alike = positive_draws(cases_of_sizes(), 0.0)  # power 0: every box alike, whatever its case
    np.testing.assert_allclose(alike.numpy(), [1 / 3] * 3)


def test_positive_patches_centre_small_boxes_more_often():
    plan = {"patch_size": [8, 8], "positive_fraction": 1.0, "positive_size_power": 1.0, "augment": {}}
    batches = EpochBatches(cases_of_sizes(), plan, batch_size=10, steps=70, seed=0)
    centred = {"2": 0, "8": 0, "4": 0}
    for batch in batches:
        for first in batch["image"][:, 0, 0, 0].numpy():
            case, (row, column) = int(first // 1000), divmod(int(first % 1000), 32)
            assert case != 2  # never a patch from the case without a box
            # a patch starts within 2 pixels (the jitter) of the chosen box's centre less 4
            key = "2" if case == 0 else "8" if row < 10 else "4"
            centred[key] += 1
    total = sum(centred.values())
    assert total == 700
    # expected 400 / 100 / 200 of 700; binomial standard deviations about 13, 9 and 12
    assert centred["2"] == pytest.approx(400, abs=45)
    assert centred["8"] == pytest.approx(100, abs=35)
    assert centred["4"] == pytest.approx(200, abs=40)


def test_a_plan_without_the_size_power_keeps_drawing_a_case_then_one_of_its_boxes():
    plan = {"patch_size": [8, 8], "positive_fraction": 1.0, "augment": {}}
    batches = EpochBatches(cases_of_sizes(), plan, batch_size=10, steps=30, seed=0)
    assert batches.owners is None
    empty = sum(int(first // 1000) == 2 for batch in batches for first in batch["image"][:, 0, 0, 0].numpy())
    assert 50 <= empty <= 150  # about a third of the 300 patches come from the case without a box


def test_the_size_draw_is_chosen_from_the_spread_of_lesion_sizes():
    from medsight.tasks.detection.plan import size_draw_power

    cubes = lambda *sides: np.array([[s, s, s] for s in sides], float)  # noqa: E731
    # 90th over 10th percentile of the sides: 3-30 mm nodules spread far more than 3x, 8-20 mm ones less
    assert size_draw_power(cubes(*np.geomspace(3, 30, 20))) == 1.0
    assert size_draw_power(cubes(*np.geomspace(8, 20, 20))) is None
    assert size_draw_power(cubes(10.0)) is None  # one lesion: nothing to weigh
    # the geometric mean of the sides: a flat 2 x 8 x 8 box counts as 5.04 mm, not 8
    assert size_draw_power(np.array([[2.0, 8, 8]] * 5 + [[12.0, 12, 12]] * 5)) is None


@pytest.mark.parametrize("diameters,expected", [((3.0, 30.0), 1.0), ((12.0, 18.0), None)])
def test_a_world_unit_plan_draws_by_size_only_when_nodule_sizes_spread(tmp_path, diameters, expected):
    from medsight.io.formats import read_dataset
    from medsight.synthetic.luna16 import make_luna16
    from medsight.tasks.detection.plan import make_detection_plan

    data = make_luna16(tmp_path / "luna", seed=1, num_scans=10, shape=(16, 40, 40), spacing_xyz=(1.5, 1.5, 3.0),
                       diameters_mm=diameters, tubes=1, empty_every=0)
    assert make_detection_plan(read_dataset(data)).get("positive_size_power") == expected
