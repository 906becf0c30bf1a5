"""The dataset fingerprint: per-case sizes and spacings after cropping, and pooled CT foreground intensities."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from copy import deepcopy
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from universalclassifier.dataset.image_io import write_image
from universalclassifier.errors import UserInputError
from universalclassifier.preprocessing.case_properties import require_keys
from universalclassifier.preprocessing.cropping import RoiMargin
from universalclassifier.preprocessing.preprocessor import body_as_roi, load_and_crop

SAMPLES_PER_CASE = 10_000


@dataclass(frozen=True)
class CaseSummary:
    """One case in the dataset fingerprint.

    Its size and spacing after cropping (original axis order), the ROI labels it holds and the fraction of the
    original voxels the crop keeps.
    """

    case_id: str
    size_after_cropping: list[int]
    spacing: list[float]
    roi_classes_present: list[int]
    size_reduction: float

    def to_dict(self) -> dict:
        """The JSON-ready form, keys in field order."""
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: object, source: str) -> CaseSummary:
        """Read the form `to_dict` writes; a missing key raises a UserInputError naming `source`."""
        names = [f.name for f in fields(cls)]
        values = require_keys(raw, names, source)
        return cls(**{name: values[name] for name in names})


@dataclass(frozen=True)
class DatasetFingerprint:
    """What the planner needs to know about a dataset, as dataset_fingerprint.json stores it.

    `intensity_properties` maps each CT channel (as a string) to its pooled foreground statistics (see
    `pooled_intensity_statistics`); `samples_per_case` is the most foreground voxels sampled per case and channel.
    """

    modalities: list[str]
    num_cases: int
    median_size_reduction: float
    intensity_properties: dict[str, dict[str, float]]
    samples_per_case: int
    cases: list[CaseSummary]

    def to_dict(self) -> dict:
        """The JSON-ready form: keys in field order, modalities as {"0": name of channel 0, ...}."""
        return {
            "modalities": {str(i): name for i, name in enumerate(self.modalities)},
            "num_cases": self.num_cases,
            "median_size_reduction": self.median_size_reduction,
            "intensity_properties": deepcopy(self.intensity_properties),
            "samples_per_case": self.samples_per_case,
            "cases": [case.to_dict() for case in self.cases],
        }

    @classmethod
    def from_dict(cls, raw: object, source: str) -> DatasetFingerprint:
        """Read the form `to_dict` writes; a missing key or malformed entry raises a UserInputError naming `source`."""
        values = require_keys(raw, [f.name for f in fields(cls)], source)
        modalities, properties, cases = values["modalities"], values["intensity_properties"], values["cases"]
        if not isinstance(modalities, dict) or list(modalities) != [str(i) for i in range(len(modalities))]:
            raise UserInputError(
                f"{source}: 'modalities' must map \"0\"..\"C-1\" to modality names; it was not written by this tool "
                "or is damaged: re-run plan & preprocess."
            )
        if not isinstance(properties, dict) or not isinstance(cases, list):
            raise UserInputError(
                f"{source}: 'intensity_properties' must be an object and 'cases' a list; it was not written by this "
                "tool or is damaged: re-run plan & preprocess."
            )
        return cls(
            modalities=list(modalities.values()),
            num_cases=values["num_cases"],
            median_size_reduction=values["median_size_reduction"],
            intensity_properties=properties,
            samples_per_case=values["samples_per_case"],
            cases=[CaseSummary.from_dict(case, f"{source}: cases[{i}]") for i, case in enumerate(cases)],
        )


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

    def summary(self) -> CaseSummary:
        """The part of this fingerprint that the dataset fingerprint keeps."""
        return CaseSummary(self.case_id, self.size, self.spacing, self.roi_classes, self.size_reduction)


def fingerprint_case(
    case_id: str,
    image_files: Sequence[Path],
    roi_file: Path | None,
    ct_channels: Sequence[int],
    seed: int,
    generated_roi_file: Path | None = None,
    margin: RoiMargin | None = None,
    body_roi: bool = True,
) -> CaseFingerprint:
    """Load and crop one case (ROI `margin`, default 5%) and describe it; sample at most 10,000 ROI-foreground voxels
    per CT channel.

    With `generated_roi_file` (the task has no ROIs), also write the all-foreground ROI this case uses; with
    `body_roi` the ROI foreground is then the body (see `body_as_roi`).
    """
    case = load_and_crop(case_id, image_files, roi_file, margin=margin)
    if generated_roi_file is not None and body_roi:
        body_as_roi(case, ct_channels)
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
) -> DatasetFingerprint:
    """The fingerprint of a dataset from its cases' fingerprints."""
    return DatasetFingerprint(
        modalities=list(modalities),
        num_cases=len(cases),
        median_size_reduction=float(np.median([c.size_reduction for c in cases])),
        intensity_properties={str(ch): pooled_intensity_statistics(cases, ch) for ch in ct_channels},
        samples_per_case=SAMPLES_PER_CASE,
        cases=[c.summary() for c in cases],
    )
