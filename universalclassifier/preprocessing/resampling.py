"""Resampling of images (cubic spline) and ROI label maps (per-label linear), with separate-z handling."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy.ndimage import zoom

ANISOTROPY_THRESHOLD = 3.0
# The largest grid a case is resampled to (voxels): 512^3, about 10x the planner's largest image size (240^3), whose
# central part is all the network sees. It costs 512 MiB per float32 channel and a float32 one-hot volume per ROI
# label. More means a header with a wrong spacing or an image unlike the training data (e.g. 100 x 512 x 512 voxels
# at 5 x 1 x 1 mm resampled to 0.5 mm gives 1000 x 1024 x 1024, 4.3 GB per channel), refused before resampling.
MAX_RESAMPLED_VOXELS = 512**3


def new_shape_for(shape: Sequence[int], spacing: Sequence[float], target_spacing: Sequence[float]) -> tuple[int, ...]:
    """Grid size after resampling: round(size * spacing / target), at least 1 voxel per axis."""
    return tuple(
        max(1, int(round(s * sp / t))) for s, sp, t in zip(shape, spacing, target_spacing, strict=True)
    )


def anisotropic_axis(spacing: ArrayLike) -> int | None:
    """The single axis whose spacing exceeds 3x the smallest, or None (isotropic-ish or two coarse axes)."""
    values = np.asarray(spacing, dtype=float)
    if values.max() / values.min() <= ANISOTROPY_THRESHOLD:
        return None
    coarse = np.flatnonzero(values == values.max())
    return int(coarse[0]) if coarse.size == 1 else None


def separate_z_axis(original_spacing: Sequence[float], target_spacing: Sequence[float]) -> int | None:
    """Axis to resample separately (order 0) or None: decided on the original spacing, else on the target."""
    spacing = np.asarray(original_spacing, dtype=float)
    if spacing.max() / spacing.min() > ANISOTROPY_THRESHOLD:
        return anisotropic_axis(spacing)
    return anisotropic_axis(target_spacing)


def _zoom_volume(volume: np.ndarray, new_shape: Sequence[int], order: int, separate_axis: int | None) -> np.ndarray:
    """Zoom one 3D float32 volume; with a separate axis, in-plane with `order`, along the axis with order 0."""
    factors = [n / s for n, s in zip(new_shape, volume.shape, strict=True)]
    if separate_axis is None:
        return zoom(volume, factors, order=order, mode="nearest", grid_mode=True, output=np.float32)
    in_plane = [f for a, f in enumerate(factors) if a != separate_axis]
    moved = np.moveaxis(volume, separate_axis, 0)
    slices = [zoom(s, in_plane, order=order, mode="nearest", grid_mode=True, output=np.float32) for s in moved]
    stacked = np.stack(slices, axis=0)
    along = [factors[separate_axis], 1.0, 1.0]
    stacked = zoom(stacked, along, order=0, mode="nearest", grid_mode=True, output=np.float32)
    return np.moveaxis(stacked, 0, separate_axis)


def resample_image(data: np.ndarray, new_shape: Sequence[int], separate_axis: int | None) -> np.ndarray:
    """Resample (C, Z, Y, X) images with cubic splines (edge mode, no anti-aliasing)."""
    new_shape = tuple(int(s) for s in new_shape)
    if tuple(data.shape[1:]) == new_shape:
        return data.astype(np.float32, copy=False)
    return np.stack([_zoom_volume(channel, new_shape, 3, separate_axis) for channel in data]).astype(np.float32)


def resample_labels(labels: np.ndarray, new_shape: Sequence[int], separate_axis: int | None) -> np.ndarray:
    """Resample a (Z, Y, X) label map: linear interpolation of each label's one-hot mask, label set where > 0.5."""
    new_shape = tuple(int(s) for s in new_shape)
    if tuple(labels.shape) == new_shape:
        return labels
    result = np.zeros(new_shape, dtype=labels.dtype)
    for value in np.unique(labels):
        if value == 0:
            continue
        weight = _zoom_volume((labels == value).astype(np.float32), new_shape, 1, separate_axis)
        result[weight > 0.5] = value
    return result
