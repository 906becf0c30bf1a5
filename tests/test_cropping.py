import numpy as np

from universalclassifier.dataset.image_io import Geometry
from universalclassifier.preprocessing.cropping import OUTSIDE_BODY, bounding_box, crop_case, nonzero_mask, widen_box
from universalclassifier.preprocessing.preprocessor import CroppedCase, body_as_roi


def test_bounding_box_is_half_open_and_none_when_empty():
    mask = np.zeros((5, 6, 7), bool)
    assert bounding_box(mask) is None
    mask[1:3, 2, 4:7] = True
    assert bounding_box(mask) == [[1, 3], [2, 3], [4, 7]]


def test_five_percent_margin_per_side_truncates_and_clips():
    # extents 40, 19, 100 -> margins int(2.0)=2, int(0.95)=0, int(5.0)=5 voxels per side
    box = [[10, 50], [3, 22], [2, 102]]
    assert widen_box(box, (60, 30, 104)) == [[8, 52], [3, 22], [0, 104]]


def test_nonzero_mask_fills_enclosed_holes():
    data = np.zeros((1, 7, 7, 7), np.float32)
    data[0, 1:6, 1:6, 1:6] = 1
    data[0, 3, 3, 3] = 0  # enclosed hole
    mask = nonzero_mask(data)
    assert mask[3, 3, 3] and mask.sum() == 125


def test_crop_case_marks_outside_body_and_crops_to_roi_with_margin():
    data = np.zeros((2, 30, 40, 50), np.float32)
    data[1, 5:25, 4:36, 10:50] = 3.0  # body only in the second modality
    data[1, 5:8, 4:8, 10:14] = 0.0  # a notch open to the outside: not a hole, stays outside the body
    roi = np.zeros((30, 40, 50), np.int16)
    roi[10:20, 10:30, 20:40] = 2  # extents 10, 20, 20 -> margins 0, 1, 1
    cropped, roi_c, body, nonzero_box, roi_box = crop_case(data, roi)
    assert nonzero_box == [[5, 25], [4, 36], [10, 50]]
    assert roi_box == [[5, 15], [5, 27], [9, 31]]  # relative to the nonzero crop
    assert cropped.shape == (2, 10, 22, 22) and roi_c.shape == body.shape == (10, 22, 22)
    assert set(np.unique(roi_c).tolist()) == {0, 2}
    # without ROI cropping the notch is ROI 0 outside the body -> -1
    full = np.ones((30, 40, 50), np.int16)
    full[data[1] == 0] = 0
    _, roi_full, body_full, _, _ = crop_case(data, full)
    assert (roi_full == -1).sum() == 3 * 4 * 4
    assert not body_full[:3, :4, :4].any()


def test_empty_roi_keeps_the_whole_nonzero_crop():
    data = np.zeros((1, 20, 20, 20), np.float32)
    data[0, 2:18, 3:17, 4:16] = 1.0
    cropped, roi, _, _, roi_box = crop_case(data, np.ones((20, 20, 20), np.int16))
    assert cropped.shape == (1, 16, 14, 12) and roi_box == [[0, 16], [0, 14], [0, 12]]
    assert (roi == 1).all()


def test_roi_without_foreground_falls_back_to_nonzero_crop():
    data = np.zeros((1, 10, 10, 10), np.float32)
    data[0, 1:9, 2:8, 3:7] = 5.0
    cropped, roi, _, _, roi_box = crop_case(data, np.zeros((10, 10, 10), np.int16))
    assert roi_box is None and cropped.shape == (1, 8, 6, 4) and (roi == 0).all()


def _ct_case_with_air() -> CroppedCase:
    """A CT slab: air (-1000 HU) everywhere, a 40 HU body with an air-filled hole (a lung) and a -100 HU fat layer."""
    data = np.full((1, 12, 16, 16), -1000.0, np.float32)
    data[0, 2:10, 3:13, 3:13] = 40.0
    data[0, 2:10, 3:13, 3] = -100.0  # fat is tissue
    data[0, 4:8, 6:10, 6:10] = -1000.0  # enclosed air: inside the body
    roi = np.ones((12, 16, 16), np.int16)
    cropped, roi_c, body, nonzero_box, roi_box = crop_case(data, roi)
    geometry = Geometry((12, 16, 16), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), tuple(np.eye(3).ravel()))
    return CroppedCase("ct", cropped, roi_c, body, geometry, nonzero_box, roi_box)


def test_ct_body_without_rois_is_tissue_above_minus_500_hu_not_the_nonzero_air():
    case = _ct_case_with_air()
    assert case.body.all()  # air is nonzero: the nonzero mask is the whole image
    body_as_roi(case, ct_channels=[0])
    assert case.body.sum() == 8 * 10 * 10 and case.body[2:10, 3:13, 3:13].all()  # fat and the enclosed air inside
    assert set(np.unique(case.roi[case.body]).tolist()) == {1} and (case.roi[~case.body] == OUTSIDE_BODY).all()
    other = _ct_case_with_air()
    body_as_roi(other)  # no CT channel named: the nonzero body (everything)
    assert other.body.all() and (other.roi == 1).all()
