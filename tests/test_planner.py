import numpy as np
import pytest

from universalclassifier.errors import UserInputError
from universalclassifier.planning.planner import (
    VOXEL_BUDGET,
    PlanningOptions,
    plan_batch_size,
    plan_image_size,
    plan_target_spacing,
    plan_transpose,
)
from universalclassifier.preprocessing.cropping import RoiMargin, widen_box


def test_target_spacing_is_the_median_without_anisotropy():
    spacings = np.array([[1, 1, 1], [2, 1, 1], [3, 1, 1.2]])
    sizes = np.full((3, 3), 50)
    np.testing.assert_allclose(plan_target_spacing(spacings, sizes), [2, 1, 1])


def test_anisotropic_thin_slab_axis_uses_tenth_percentile():
    z = [5, 6, 4, 5, 7]  # median 5 > 3 * 0.8; sorted 4,5,5,6,7 -> p10 = 4 + 0.4 * (5 - 4) = 4.4
    spacings = np.array([[s, 0.8, 0.8] for s in z])
    sizes = np.array([[20, 200, 200]] * 5)  # 20 * 3 < 200
    np.testing.assert_allclose(plan_target_spacing(spacings, sizes), [4.4, 0.8, 0.8])


def test_anisotropic_axis_with_many_slices_keeps_the_median():
    spacings = np.array([[s, 0.8, 0.8] for s in [5, 6, 4, 5, 7]])
    sizes = np.array([[100, 200, 200]] * 5)  # 100 * 3 >= 200: not a thin slab
    np.testing.assert_allclose(plan_target_spacing(spacings, sizes), [5, 0.8, 0.8])


def test_anisotropic_target_never_below_the_other_axes():
    spacings = np.array([[s, 1.8, 1.0] for s in [0.5, 0.6, 6, 6, 6]])  # p10 = 0.54 < 1.8
    sizes = np.array([[10, 100, 100]] * 5)
    np.testing.assert_allclose(plan_target_spacing(spacings, sizes), [1.8 + 1e-5, 1.8, 1.0])


def test_transpose_puts_the_coarsest_axis_first():
    assert plan_transpose([1.0, 1.0, 3.0]) == ([2, 0, 1], [1, 2, 0])
    assert plan_transpose([3.0, 1.0, 1.0]) == ([0, 1, 2], [0, 1, 2])


def test_image_size_is_the_per_axis_maximum_extent_within_budget():
    sizes = np.array([[10, 20, 30], [12, 18, 30]])
    spacings = np.array([[1, 1, 1], [1, 1, 2]])
    size, target, shrunk = plan_image_size(sizes, spacings, [1, 1, 1])
    assert size == [12, 20, 60] and target == [1, 1, 1] and not shrunk
    # cbrt(240^3 / 14400) = 9.87 -> floor(19.7) = 19
    assert plan_batch_size(size, shrunk, num_cases=100) == 19


def test_image_size_rounds_up_fractional_extents():
    size, _, _ = plan_image_size(np.array([[10, 10, 10]]), np.array([[1.0, 1.0, 1.0]]), [0.3, 1, 1])
    assert size == [34, 10, 10]  # 10 / 0.3 = 33.3 -> 34


def test_budget_shrink_scales_size_and_coarsens_spacing():
    size, target, shrunk = plan_image_size(np.array([[300, 300, 300]]), np.ones((1, 3)), [1, 1, 1])
    # r = cbrt(240^3 / 300^3) = 0.8
    assert shrunk and size == [240, 240, 240]
    np.testing.assert_allclose(target, [1.25, 1.25, 1.25])
    assert plan_batch_size(size, shrunk, num_cases=100) == 2  # s = budget / voxels = 1


def test_budget_shrink_with_a_small_budget():
    size, target, shrunk = plan_image_size(np.array([[40, 40, 10]]), np.ones((1, 3)), [1, 1, 1], budget=2000)
    # r = cbrt(2000 / 16000) = 0.5
    assert shrunk and size == [20, 20, 5]
    np.testing.assert_allclose(target, [2, 2, 2])
    assert plan_batch_size(size, shrunk, num_cases=100, budget=2000) == 2


@pytest.mark.parametrize("num_cases, expected", [(100, 19), (20, 16), (6, 4), (3, 2)])
def test_batch_size_is_capped_by_the_training_cases_of_a_fold(num_cases, expected):
    assert plan_batch_size([12, 20, 60], False, num_cases) == expected


def test_batch_size_for_a_budget_sized_image_is_two():
    assert plan_batch_size([240, 240, 240], False, 100) == 2
    assert VOXEL_BUDGET == 240**3


def test_percentile_rule_holds_most_cases_and_ignores_the_largest():
    # 19 small cases and one large one, like a nodule set: the maximum would make most of the input padding
    sizes = np.array([[6, 12, 13]] * 19 + [[41, 91, 89]], dtype=float)
    spacings = np.ones((20, 3))
    size, _, shrunk = plan_image_size(sizes, spacings, [1, 1, 1], percentile=90)
    assert size == [6, 12, 13] and not shrunk
    assert plan_image_size(sizes, spacings, [1, 1, 1])[0] == [41, 91, 89]  # the AUC23 rule: every case fits


def test_planning_options_check_their_values_and_auc23_is_the_max_rule():
    assert PlanningOptions().size_rule == "percentile" and PlanningOptions().size_percentile == 90
    auc23 = PlanningOptions.auc23()
    assert (auc23.size_rule, auc23.size_percentile, auc23.roi_margin_fraction, auc23.roi_margin_mm) == (
        "max", 100.0, 0.05, 0.0
    )
    assert PlanningOptions().body_roi and not auc23.body_roi
    for bad in ({"size_rule": "median"}, {"size_percentile": 0}, {"roi_margin_mm": -1}):
        with pytest.raises(UserInputError):
            PlanningOptions(**bad)


def test_roi_margin_in_mm_widens_each_axis_by_its_own_voxel_count():
    margin = RoiMargin(0.05, 5.0)
    assert margin.voxels(20, 0.7) == 1 + 8  # 5% of 20 voxels, then 5 mm at 0.7 mm per voxel, rounded up
    assert margin.voxels(4, 2.5) == 0 + 2
    box = widen_box([[10, 14], [20, 40], [20, 40]], (30, 100, 100), margin, spacing=(2.5, 0.7, 0.7))
    assert box == [[8, 16], [11, 49], [11, 49]]
    assert widen_box([[10, 14], [20, 40], [20, 40]], (30, 100, 100)) == [[10, 14], [19, 41], [19, 41]]  # AUC23: 5%
