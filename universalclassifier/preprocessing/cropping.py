"""Crop to the nonzero region, then to the ROI with a margin (AUC23: 5% of the ROI's extent per side)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

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


@dataclass(frozen=True)
class RoiMargin:
    """Context kept around the ROI per side: a fraction of the ROI's extent plus a fixed width in mm."""

    fraction: float = ROI_MARGIN_FRACTION
    mm: float = 0.0

    def voxels(self, extent: int, spacing: float) -> int:
        """Margin in voxels on an axis where the ROI spans `extent` voxels of `spacing` mm."""
        return int(extent * self.fraction) + (math.ceil(self.mm / spacing - 1e-6) if self.mm > 0 else 0)


def widen_box(
    box: BoundingBox,
    shape: tuple[int, ...],
    margin: RoiMargin | None = None,
    spacing: Sequence[float] | None = None,
) -> BoundingBox:
    """Widen each axis of a box by its margin (default: 5% of the extent) per side, clipped to the shape.

    With `margin`, its millimetres are converted with `spacing` (mm per voxel, same axis order as the box).
    """
    margin = margin or RoiMargin()
    spacing = spacing if spacing is not None else [1.0] * len(box)
    widened = []
    for (start, stop), size, step in zip(box, shape, spacing, strict=True):
        width = margin.voxels(stop - start, float(step))
        widened.append([max(0, start - width), min(size, stop + width)])
    return widened


def crop_case(
    data: np.ndarray, roi: np.ndarray, margin: RoiMargin | None = None, spacing: Sequence[float] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, BoundingBox, BoundingBox | None]:
    """Two-step crop of (C, Z, Y, X) data and its (Z, Y, X) ROI, the second step with `margin` (default: 5%)
    around the ROI (`spacing`, in mm per voxel, converts a margin in mm).

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
        roi_box = widen_box(roi_box, roi.shape, margin=margin, spacing=spacing)
        data, roi, body = crop_to_box(data, roi_box), crop_to_box(roi, roi_box), crop_to_box(body, roi_box)
    return np.ascontiguousarray(data), np.ascontiguousarray(roi), np.ascontiguousarray(body), nonzero_box, roi_box
