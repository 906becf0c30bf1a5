"""Crop to the nonzero region, then to the ROI with a 5% margin."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import binary_fill_holes

ROI_MARGIN_FRACTION = 0.05
OUTSIDE_BODY = -1

BoundingBox = list[list[int]]  # [[start, stop), ...] per axis


def bounding_box(mask: np.ndarray) -> BoundingBox | None:
    """Half-open bounding box of the True voxels of a 3D mask, or None when it has none."""
    box = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(np.any(mask, axis=other))
        if hits.size == 0:
            return None
        box.append([int(hits[0]), int(hits[-1]) + 1])
    return box


def crop_to_box(array: np.ndarray, box: BoundingBox) -> np.ndarray:
    """Crop the last three axes of an array to a bounding box."""
    slices = tuple(slice(start, stop) for start, stop in box)
    return array[(Ellipsis,) + slices]


def nonzero_mask(data: np.ndarray) -> np.ndarray:
    """Voxels that are nonzero in any channel of (C, Z, Y, X), with enclosed holes filled."""
    return binary_fill_holes(np.any(data != 0, axis=0))


def widen_box(box: BoundingBox, shape: tuple[int, ...], fraction: float = ROI_MARGIN_FRACTION) -> BoundingBox:
    """Widen each axis of a box by int(extent * fraction) voxels per side, clipped to the shape."""
    widened = []
    for (start, stop), size in zip(box, shape, strict=True):
        margin = int((stop - start) * fraction)
        widened.append([max(0, start - margin), min(size, stop + margin)])
    return widened


def crop_case(
    data: np.ndarray, roi: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, BoundingBox, BoundingBox | None]:
    """Two-step crop of (C, Z, Y, X) data and its (Z, Y, X) ROI.

    Returns the cropped data, ROI (0-voxels outside the body set to -1), body mask, the nonzero box in
    original coordinates and the ROI box relative to the nonzero crop (None when the ROI has no foreground).
    """
    body = nonzero_mask(data)
    nonzero_box = bounding_box(body) or [[0, s] for s in body.shape]
    data = crop_to_box(data, nonzero_box)
    roi = crop_to_box(roi, nonzero_box).copy()
    body = crop_to_box(body, nonzero_box)
    roi[(roi == 0) & ~body] = OUTSIDE_BODY
    roi_box = bounding_box(roi > 0)
    if roi_box is not None:
        roi_box = widen_box(roi_box, roi.shape)
        data, roi, body = crop_to_box(data, roi_box), crop_to_box(roi, roi_box), crop_to_box(body, roi_box)
    return np.ascontiguousarray(data), np.ascontiguousarray(roi), np.ascontiguousarray(body), nonzero_box, roi_box
