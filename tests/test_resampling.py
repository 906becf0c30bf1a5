import numpy as np

from universalclassifier.preprocessing.resampling import (
    anisotropic_axis,
    new_shape_for,
    resample_image,
    resample_labels,
    separate_z_axis,
)


def test_new_shape_rounds_size_times_spacing_over_target():
    assert new_shape_for((10, 20, 30), (2.0, 1.0, 0.5), (1.0, 1.0, 1.0)) == (20, 20, 15)
    assert new_shape_for((7, 7, 7), (1.0, 1.0, 1.0), (3.0, 3.0, 3.0)) == (2, 2, 2)  # 2.33 -> 2


def test_separate_z_decision():
    assert anisotropic_axis([5.0, 1.0, 1.0]) == 0
    assert anisotropic_axis([1.0, 1.0, 3.5]) == 2
    assert anisotropic_axis([3.0, 1.0, 1.0]) is None  # ratio exactly 3 is not anisotropic
    assert anisotropic_axis([5.0, 5.0, 1.0]) is None  # two coarse axes: no single slice axis
    # decided on the original spacing first, else on the target
    assert separate_z_axis([4.0, 1.0, 1.0], [1.0, 1.0, 1.0]) == 0
    assert separate_z_axis([1.0, 1.0, 1.0], [1.0, 4.0, 1.0]) == 1
    assert separate_z_axis([1.0, 1.0, 1.0], [2.0, 1.0, 1.0]) is None


def test_resample_image_keeps_constants_and_shape():
    data = np.full((2, 6, 8, 10), 3.0, np.float32)
    out = resample_image(data, (12, 4, 10), None)
    assert out.shape == (2, 12, 4, 10) and out.dtype == np.float32
    np.testing.assert_allclose(out, 3.0, atol=1e-5)


def test_separate_axis_is_nearest_neighbour():
    data = np.zeros((1, 3, 4, 4), np.float32)
    data[0, 1] = 1.0
    out = resample_image(data, (6, 4, 4), separate_axis=0)
    # order 0 along the slice axis: each slice is repeated, no interpolated values in between
    np.testing.assert_array_equal(np.unique(out), [0.0, 1.0])
    np.testing.assert_array_equal(out[0, :, 0, 0], [0, 0, 1, 1, 0, 0])


def test_same_shape_is_a_no_op():
    data = np.random.default_rng(0).normal(size=(1, 5, 5, 5)).astype(np.float32)
    np.testing.assert_array_equal(resample_image(data, (5, 5, 5), None), data)


def test_resample_labels_keeps_values_and_location():
    labels = np.full((10, 10, 10), -1, np.int16)
    labels[2:8, 2:8, 2:8] = 0
    labels[4:6, 4:6, 4:6] = 2
    out = resample_labels(labels, (20, 20, 20), None)
    assert out.dtype == np.int16 and set(np.unique(out).tolist()) == {-1, 0, 2}
    # per axis the linear weights of the upsampled 2-voxel block are 0.75, 1, 1, 0.75 (grid-centred zoom);
    # the 8 corners get 0.75^3 = 0.42 < 0.5 and drop out: 4^3 - 8 voxels keep label 2
    assert (out == 2).sum() == 4**3 - 8 and out[9, 9, 9] == 2 and out[8, 8, 8] == 0 and out[0, 0, 0] == -1
