"""A PNG of a saliency map: three orthogonal slices through a voxel, the map over the image."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from universalclassifier.dataset.image_io import Geometry


def peak_voxel(volume: np.ndarray) -> list[int]:
    """[z, y, x] of the voxel with the largest absolute value (the first one on ties)."""
    return [int(i) for i in np.unravel_index(int(np.argmax(np.abs(volume))), volume.shape)]


def _slices(volume: np.ndarray, voxel: Sequence[int]) -> list[np.ndarray]:
    z, y, x = voxel
    return [volume[z], volume[:, y], volume[:, :, x]]


def save_map_figure(
    image: np.ndarray,
    saliency: np.ndarray,
    geometry: Geometry,
    voxel: Sequence[int],
    title: str,
    path: Path,
) -> None:
    """Write a PNG with the slices z, y and x (array axes) through `voxel`: `image` in grey, `saliency` on top in a
    diverging colour map centred on 0 (red: raises the target, blue: lowers it), hidden where it is below 5% of its
    largest magnitude; pixels keep the spacing's aspect ratio."""
    from matplotlib.figure import Figure

    spacing_z, spacing_y, spacing_x = geometry.spacing
    aspects = [spacing_y / spacing_x, spacing_z / spacing_x, spacing_z / spacing_y]
    limit = float(np.abs(saliency).max()) or 1.0
    low, high = np.percentile(image, [0.5, 99.5])
    figure = Figure(figsize=(12, 4.4), layout="constrained")
    axes = figure.subplots(1, 3)
    overlays = []
    for axis, picture, overlay, aspect, name, index in zip(
        axes, _slices(image, voxel), _slices(saliency, voxel), aspects, "zyx", voxel, strict=True
    ):
        axis.imshow(picture, cmap="gray", vmin=low, vmax=high if high > low else low + 1, aspect=aspect)
        masked = np.ma.masked_where(np.abs(overlay) < 0.05 * limit, overlay)
        overlays.append(axis.imshow(masked, cmap="RdBu_r", vmin=-limit, vmax=limit, alpha=0.6, aspect=aspect))
        axis.set_title(f"{name} = {index}")
        axis.set_xticks([])
        axis.set_yticks([])
    figure.colorbar(overlays[0], ax=list(axes), shrink=0.8, label="attribution")
    figure.suptitle(f"{title}; peak |attribution| at [z, y, x] = {list(voxel)}")
    figure.savefig(path, dpi=100)
