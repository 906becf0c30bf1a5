"""Intensity normalization per modality: CT (dataset statistics), per-image z-score, or none."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from universalclassifier.errors import UserInputError

CT = "CT"
ZSCORE = "zscore"
NO_NORM = "noNorm"
EPSILON = 1e-8


def scheme_for_modality(name: str) -> str:
    """`CT` for CT (any case), `noNorm` for a modality literally named noNorm, otherwise per-image z-score."""
    if name.upper() == CT:
        return CT
    if name == NO_NORM:
        return NO_NORM
    return ZSCORE


def normalize_ct(channel: np.ndarray, stats: Mapping[str, float]) -> np.ndarray:
    """Clip to the dataset's [p0.5, p99.5] foreground range, then standardize with its mean and sd (in float64)."""
    clipped = np.clip(channel.astype(np.float64), stats["percentile_00_5"], stats["percentile_99_5"])
    return ((clipped - stats["mean"]) / max(stats["sd"], EPSILON)).astype(np.float32)


def normalize_zscore(channel: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """(x - mean) / (sd + 1e-8) of this image; with a mask, statistics inside it and 0 outside.

    Computed in float64: float32 sums and squares overflow for values beyond about 1e19.
    """
    values = channel.astype(np.float64)
    if mask is None:
        return ((values - values.mean()) / (values.std() + EPSILON)).astype(np.float32)
    if not mask.any():
        return np.zeros_like(channel, dtype=np.float32)
    inside = values[mask]
    result = (values - inside.mean()) / (inside.std() + EPSILON)
    result[~mask] = 0
    return result.astype(np.float32)


def normalize(
    data: np.ndarray,
    schemes: list[str],
    use_mask: list[bool],
    intensity_properties: Mapping[str, Mapping[str, float]],
    body_mask: np.ndarray | None,
    source: str = "the case",
) -> np.ndarray:
    """Normalize each channel of (C, Z, Y, X) by its modality's scheme.

    A channel that is not finite afterwards (values beyond float32 after resampling, e.g. near 3e38, or damaged
    statistics) is refused with a UserInputError naming `source`, rather than handed on as NaN.
    """
    result = np.empty(data.shape, dtype=np.float32)
    for c, scheme in enumerate(schemes):
        if scheme == CT:
            result[c] = normalize_ct(data[c], intensity_properties[str(c)])
        elif scheme == ZSCORE:
            result[c] = normalize_zscore(data[c], body_mask if use_mask[c] else None)
        elif scheme == NO_NORM:
            result[c] = data[c]
        else:
            raise ValueError(f"Unknown normalization scheme '{scheme}' for channel {c}.")
        if not np.isfinite(result[c]).all():
            raise UserInputError(
                f"{source}: channel {c} ({scheme} normalization) has NaN or infinite values after normalization; its "
                "intensities exceed float32 (about 3.4e38) once resampled: rescale the image (e.g. to Hounsfield units "
                "or to [0, 1])."
            )
    return result
