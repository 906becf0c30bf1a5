"""Undo preprocessing for a map on the network input's grid: padding, resampling, transpose and both crops.

`preprocess_case` crops a case to its nonzero region and then to the ROI box (5% margin), transposes it into the plans'
axis order, resamples it to the target spacing and pads (or crops) it centrally to the plans' image size. This module
walks back the same way, so that a map computed on the network input lands on the voxels of the original image it
was computed from; voxels the network never saw (outside the crops, or cut off by a central crop) get `fill`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from universalclassifier.plans import Plans
from universalclassifier.preprocessing.case_properties import CaseProperties
from universalclassifier.preprocessing.cropping import BoundingBox


def crop_box_in_original(properties: CaseProperties) -> BoundingBox:
    """The box of the original image (half-open, per axis in original order) that the network input was cut from:
    the ROI box (with its margin) inside the nonzero box, or the nonzero box when the ROI had no foreground."""
    nonzero = properties.nonzero_bbox
    if properties.roi_bbox_in_nonzero_crop is None:
        return [list(axis) for axis in nonzero]
    return [
        [start + roi_start, start + roi_stop]
        for (start, _), (roi_start, roi_stop) in zip(nonzero, properties.roi_bbox_in_nonzero_crop, strict=True)
    ]


def unpad(volume: np.ndarray, pad_offsets: Sequence[Sequence[int]], fill: float = 0.0) -> np.ndarray:
    """Invert `center_pad_or_crop` on a (Z, Y, X) volume: drop the padding; where the case was cropped centrally,
    put the volume back in the middle of the larger grid, `fill` in the cropped-away margins."""
    shape = [size - before - after for size, (before, after) in zip(volume.shape, pad_offsets, strict=True)]
    result = np.full(shape, fill, dtype=volume.dtype)
    source, target = [], []
    for size, new_size, (before, after) in zip(volume.shape, shape, pad_offsets, strict=True):
        source.append(slice(max(before, 0), size - max(after, 0)))
        target.append(slice(max(-before, 0), new_size - max(-after, 0)))
    result[tuple(target)] = volume[tuple(source)]
    return result


def resize_axis(volume: np.ndarray, axis: int, new_size: int, order: int) -> np.ndarray:
    """Resample one axis to `new_size` voxels: linear (`order` 1) or nearest neighbour (0) interpolation.

    Voxel centres are mapped as scipy's `zoom(..., grid_mode=True)` maps them, which is how the preprocessing
    resampled: output voxel i lies at input coordinate (i + 0.5) * old / new - 0.5, clamped to the edge voxels.
    """
    old_size = volume.shape[axis]
    if old_size == new_size:
        return volume
    coordinates = np.clip((np.arange(new_size) + 0.5) * old_size / new_size - 0.5, 0, old_size - 1)
    if order == 0:
        return np.take(volume, np.floor(coordinates + 0.5).astype(np.intp), axis=axis)
    low = np.floor(coordinates).astype(np.intp)
    high = np.minimum(low + 1, old_size - 1)
    shape = [1] * volume.ndim
    shape[axis] = new_size
    weight = (coordinates - low).reshape(shape).astype(volume.dtype)
    return np.take(volume, low, axis=axis) * (1 - weight) + np.take(volume, high, axis=axis) * weight


def resize(volume: np.ndarray, shape: Sequence[int], separate_axis: int | None) -> np.ndarray:
    """Resample a (Z, Y, X) map to `shape`: linear on every axis, nearest neighbour along `separate_axis` (the axis
    preprocessing resampled with order 0, see `separate_z_axis`)."""
    for axis, size in enumerate(shape):
        volume = resize_axis(volume, axis, int(size), 0 if axis == separate_axis else 1)
    return volume


def to_original_grid(volume: np.ndarray, properties: CaseProperties, plans: Plans, fill: float = 0.0) -> np.ndarray:
    """A (Z, Y, X) map on the network input's grid (the plans' image size, transposed axis order) on the original
    image's grid (`properties.original_size`, original axis order), as float32; `fill` where the network saw nothing.
    """
    if list(volume.shape) != list(plans.image_size):
        raise ValueError(f"expected a map of the plans' image size {plans.image_size}, got {list(volume.shape)}")
    volume = unpad(np.asarray(volume, dtype=np.float32), properties.pad_offsets, fill)
    cropped_transposed = [properties.size_after_cropping[a] for a in plans.transpose_forward]
    volume = resize(volume, cropped_transposed, properties.separate_z_axis)
    volume = volume.transpose(plans.transpose_backward)
    result = np.full(properties.original_size, fill, dtype=np.float32)
    result[tuple(slice(start, stop) for start, stop in crop_box_in_original(properties))] = volume
    return result
