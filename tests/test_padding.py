import numpy as np

from universalclassifier.preprocessing.padding import center_pad_or_crop
from universalclassifier.preprocessing.preprocessor import to_network_input


def test_central_padding_puts_the_extra_voxel_after():
    array = np.ones((2, 5, 4, 3), np.float32)
    out, offsets = center_pad_or_crop(array, (8, 4, 6))
    assert out.shape == (2, 8, 4, 6) and offsets == [[1, 2], [0, 0], [1, 2]]
    assert out[:, 1:6, :, 1:4].all() and out.sum() == array.sum()


def test_central_crop_of_a_larger_case():
    array = np.arange(9, dtype=np.float32)[None, :, None, None] * np.ones((1, 9, 2, 2), np.float32)
    out, offsets = center_pad_or_crop(array, (6, 2, 2))
    assert offsets[0] == [-1, -2]
    np.testing.assert_array_equal(out[0, :, 0, 0], [1, 2, 3, 4, 5, 6])


def test_roi_channel_maps_outside_to_zero_and_scales_into_unit_interval():
    array = np.zeros((2, 1, 1, 4), np.float32)
    array[0] = 7.0
    array[1, 0, 0] = [-1, 0, 1, 2]
    out = to_network_input(array, num_roi_classes=3)
    np.testing.assert_allclose(out[1, 0, 0], [0, 0, 1 / 3, 2 / 3])
    np.testing.assert_array_equal(out[0], 7.0)
    assert array[1, 0, 0, 0] == -1  # the input is not modified
    assert out[1].min() >= 0 and out[1].max() < 1
