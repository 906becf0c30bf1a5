import numpy as np
import pytest

from universalclassifier.errors import UserInputError
from universalclassifier.preprocessing.normalization import (
    CT,
    NO_NORM,
    ZSCORE,
    normalize,
    normalize_ct,
    normalize_zscore,
    scheme_for_modality,
)


def test_scheme_per_modality_name():
    assert [scheme_for_modality(m) for m in ["CT", "ct", "T2", "noNorm", "nonorm"]] == [CT, CT, ZSCORE, NO_NORM, ZSCORE]


def test_zscore_over_the_whole_image():
    x = np.array([1.0, 2.0, 3.0, 4.0], np.float32)
    np.testing.assert_allclose(normalize_zscore(x, None), (x - 2.5) / np.sqrt(1.25), rtol=1e-6)


def test_zscore_inside_the_mask_and_zero_outside():
    x = np.array([7.0, 9.0, 2.0, 4.0], np.float32)
    mask = np.array([False, False, True, True])
    np.testing.assert_allclose(normalize_zscore(x, mask), [0, 0, -1, 1], atol=1e-6)


def test_ct_clips_to_percentiles_then_standardizes():
    stats = {"percentile_00_5": -100.0, "percentile_99_5": 100.0, "mean": 10.0, "sd": 20.0}
    x = np.array([-500.0, 0.0, 50.0, 500.0], np.float32)
    np.testing.assert_allclose(normalize_ct(x, stats), [-5.5, -0.5, 2.0, 4.5])


def test_normalize_dispatches_per_channel():
    data = np.stack([np.full((2, 2, 2), 5.0), np.arange(8.0).reshape(2, 2, 2)]).astype(np.float32)
    stats = {"0": {"percentile_00_5": 0.0, "percentile_99_5": 4.0, "mean": 2.0, "sd": 2.0}}
    out = normalize(data, [CT, NO_NORM], [False, False], stats, None)
    np.testing.assert_allclose(out[0], 1.0)  # clipped to 4 -> (4 - 2) / 2
    np.testing.assert_array_equal(out[1], data[1])
    with pytest.raises(ValueError, match="Unknown normalization scheme"):
        normalize(data, ["fancy", NO_NORM], [False, False], {}, None)


def test_zscore_of_float32_values_near_5e36_is_finite_and_exact():
    """float32 sums and squares overflow beyond about 1e19: the z-score is computed in float64 (issue 21)."""
    x = np.array([1e36, 3e36, 5e36, 7e36], np.float32)
    expected = (np.array([-3.0, -1.0, 1.0, 3.0]) / np.sqrt(5.0)).astype(np.float32)
    np.testing.assert_allclose(normalize_zscore(x, None), expected, rtol=1e-5)
    mask = np.array([True, True, True, False])
    np.testing.assert_allclose(normalize_zscore(x, mask), [-np.sqrt(1.5), 0.0, np.sqrt(1.5), 0.0], atol=1e-6)
    data = np.stack([x.reshape(1, 1, 4)] * 2)
    assert np.isfinite(normalize(data, [ZSCORE, ZSCORE], [False, True], {}, mask.reshape(1, 1, 4))).all()


def test_values_beyond_float32_after_normalization_are_refused_naming_the_case():
    data = np.full((1, 2, 2, 2), np.inf, np.float32)  # e.g. a spline overshoot past 3.4e38 when resampling
    with pytest.raises(UserInputError, match=r"case c7: channel 0 \(noNorm normalization\) has NaN or infinite"):
        normalize(data, [NO_NORM], [False], {}, None, "case c7")
