"""The dataset fingerprint: per-case sizes and spacings after cropping, and pooled CT foreground intensities."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from universalclassifier.dataset.image_io import write_image
from universalclassifier.preprocessing.preprocessor import load_and_crop

SAMPLES_PER_CASE = 10_000


@dataclass
class CaseFingerprint:
    """What planning needs to know about one case after cropping."""

    case_id: str
    size: list[int]
    spacing: list[float]
    roi_classes: list[int]
    size_reduction: float
    intensity_samples: dict[int, np.ndarray] = field(repr=False)
    intensity_range: dict[int, tuple[float, float]]

    def to_dict(self) -> dict:
        return {
            "case_id": self.case_id,
            "size_after_cropping": self.size,
            "spacing": self.spacing,
            "roi_classes_present": self.roi_classes,
            "size_reduction": self.size_reduction,
        }


def fingerprint_case(
    case_id: str,
    image_files: Sequence[Path],
    roi_file: Path | None,
    ct_channels: Sequence[int],
    seed: int,
    generated_roi_file: Path | None = None,
) -> CaseFingerprint:
    """Load and crop one case and describe it; sample at most 10,000 ROI-foreground voxels per CT channel.

    With `generated_roi_file`, also write the all-foreground ROI this case uses (the task has no ROIs).
    """
    case = load_and_crop(case_id, image_files, roi_file)
    if generated_roi_file is not None:
        write_image(np.ones(case.geometry.size, dtype=np.uint8), case.geometry, generated_roi_file)
    foreground = case.roi > 0
    rng = np.random.default_rng([seed, zlib.crc32(case_id.encode())])
    samples, ranges = {}, {}
    for channel in ct_channels:
        voxels = case.data[channel][foreground]
        if voxels.size:
            take = min(SAMPLES_PER_CASE, voxels.size)
            samples[channel] = rng.choice(voxels, size=take, replace=False)
            ranges[channel] = (float(voxels.min()), float(voxels.max()))
    return CaseFingerprint(
        case_id=case_id,
        size=list(case.roi.shape),
        spacing=list(case.spacing),
        roi_classes=sorted(int(v) for v in np.unique(case.roi) if v > 0),
        size_reduction=float(case.roi.size / np.prod(case.geometry.size)),
        intensity_samples=samples,
        intensity_range=ranges,
    )


def pooled_intensity_statistics(cases: Sequence[CaseFingerprint], channel: int) -> dict[str, float]:
    """Statistics of the pooled foreground samples of one CT channel (min and max are exact over all voxels)."""
    pooled = np.concatenate([c.intensity_samples[channel] for c in cases if channel in c.intensity_samples])
    if pooled.size == 0:
        raise ValueError(f"No foreground voxels found for CT channel {channel} in any case.")
    pooled = pooled.astype(np.float64)
    return {
        "mean": float(pooled.mean()),
        "sd": float(pooled.std()),
        "median": float(np.median(pooled)),
        "min": min(c.intensity_range[channel][0] for c in cases if channel in c.intensity_range),
        "max": max(c.intensity_range[channel][1] for c in cases if channel in c.intensity_range),
        "percentile_00_5": float(np.percentile(pooled, 0.5)),
        "percentile_99_5": float(np.percentile(pooled, 99.5)),
    }


def dataset_fingerprint(
    cases: Sequence[CaseFingerprint], modalities: Sequence[str], ct_channels: Sequence[int]
) -> dict:
    """The JSON-ready fingerprint of a dataset."""
    return {
        "modalities": {str(i): name for i, name in enumerate(modalities)},
        "num_cases": len(cases),
        "median_size_reduction": float(np.median([c.size_reduction for c in cases])),
        "intensity_properties": {str(ch): pooled_intensity_statistics(cases, ch) for ch in ct_channels},
        "samples_per_case": SAMPLES_PER_CASE,
        "cases": [c.to_dict() for c in cases],
    }
