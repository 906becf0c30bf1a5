"""Bring arrays to the plan's image size: central zero-padding, or central cropping when a case is larger."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def center_pad_or_crop(
    array: np.ndarray, target_shape: Sequence[int], pad_value: float = 0.0
) -> tuple[np.ndarray, list[list[int]]]:
    """Fit the last len(target_shape) axes centrally into `target_shape`.

    Returns the new array and, per axis, [offset_before, offset_after]: positive values are voxels of padding,
    negative values voxels cropped away.
    """
    spatial = array.shape[-len(target_shape):]
    offsets = []
    crop = [slice(None)] * array.ndim
    pad = [(0, 0)] * array.ndim
    lead = array.ndim - len(target_shape)
    for axis, (size, target) in enumerate(zip(spatial, target_shape, strict=True)):
        difference = int(target) - int(size)
        before = difference // 2 if difference >= 0 else -((-difference) // 2)
        after = difference - before
        offsets.append([before, after])
        if difference < 0:
            crop[lead + axis] = slice(-before, size + after)
        else:
            pad[lead + axis] = (before, after)
    result = array[tuple(crop)]
    if any(p != (0, 0) for p in pad):
        result = np.pad(result, pad, mode="constant", constant_values=pad_value)
    return np.ascontiguousarray(result), offsets
