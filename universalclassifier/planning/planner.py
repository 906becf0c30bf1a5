"""The planner: target spacing, axis order, image size, batch size and normalization from a fingerprint."""

from __future__ import annotations

import math
from collections.abc import Sequence
from copy import deepcopy
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike

from universalclassifier.dataset.dataset_json import DatasetDescription
from universalclassifier.planning.fingerprint import DatasetFingerprint
from universalclassifier.plans import Plans, check_planning_fields
from universalclassifier.preprocessing.cropping import ROI_MARGIN_FRACTION, RoiMargin
from universalclassifier.preprocessing.normalization import ZSCORE, scheme_for_modality

VOXEL_BUDGET = 240**3
ANISOTROPY_FACTOR = 3.0
ANISOTROPIC_PERCENTILE = 10
MASK_SIZE_REDUCTION_THRESHOLD = 0.75
NUM_FOLDS = 5
DEFAULT_SIZE_PERCENTILE = 90.0


@dataclass(frozen=True)
class PlanningOptions:
    """The planner's choices that are not derived from the data: how the image size is chosen and the ROI margin.

    `size_rule` "percentile" (the default) makes the image hold `size_percentile`% of the cases on each axis and
    zooms larger cases down to fit (their true size stays known to the network, see preprocessing); "max" (AUC23)
    makes it hold every case, padding the others. The margin is `roi_margin_fraction` of the ROI's extent plus
    `roi_margin_mm` per side (AUC23: 5%, 0 mm). Without ROI files the ROI is the body (`body_roi`; AUC23: the whole
    crop). `auc23()` gives the AUC23 planning.
    """

    size_rule: str = "percentile"
    size_percentile: float = DEFAULT_SIZE_PERCENTILE
    roi_margin_fraction: float = ROI_MARGIN_FRACTION
    roi_margin_mm: float = 0.0
    body_roi: bool = True  # for tasks without ROI files: the body is the ROI (False: the whole crop, as in AUC23)

    def __post_init__(self) -> None:
        fields = {**asdict(self), "roi_from_body": self.body_roi}
        del fields["body_roi"]
        check_planning_fields(fields, "Planning options")

    @classmethod
    def auc23(cls) -> PlanningOptions:
        """The predecessor's planning: an image that holds the largest case, 5% ROI margin."""
        return cls(size_rule="max", size_percentile=100.0, body_roi=False)

    @property
    def margin(self) -> RoiMargin:
        return RoiMargin(self.roi_margin_fraction, self.roi_margin_mm)


def _ceil(values: np.ndarray) -> list[int]:
    """Round up, ignoring floating-point noise below 1e-6 voxel."""
    return [int(v) for v in np.ceil(np.round(np.asarray(values, dtype=float), 6))]


def plan_target_spacing(spacings: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Per-axis median spacing, with a finer spacing on a single much coarser axis of a thin-slab dataset.

    `spacings` and `sizes` are (cases, 3) in original axis order.
    """
    spacings = np.asarray(spacings, dtype=float)
    target = np.median(spacings, axis=0)
    median_size = np.median(np.asarray(sizes, dtype=float), axis=0)
    worst = int(np.argmax(target))
    others = [a for a in range(3) if a != worst]
    coarse = target[worst] > ANISOTROPY_FACTOR * max(target[others])
    few_slices = median_size[worst] * ANISOTROPY_FACTOR < min(median_size[others])
    if coarse and few_slices:
        finer = float(np.percentile(spacings[:, worst], ANISOTROPIC_PERCENTILE))
        floor = max(target[others])
        target[worst] = finer if finer >= floor else floor + 1e-5
    return target


def plan_transpose(target_spacing: ArrayLike) -> tuple[list[int], list[int]]:
    """Axis order putting the coarsest target spacing first; returns (forward, backward) permutations."""
    target = np.asarray(target_spacing, dtype=float)
    first = int(np.argmax(target))
    forward = [first] + [a for a in range(len(target)) if a != first]
    return forward, [forward.index(a) for a in range(len(forward))]


def plan_image_size(
    sizes: np.ndarray,
    spacings: np.ndarray,
    target_spacing: ArrayLike,
    budget: int = VOXEL_BUDGET,
    percentile: float = 100.0,
) -> tuple[list[int], list[float], bool]:
    """Image size that holds `percentile`% of the cases at the target spacing (per axis; 100: every case), shrunk
    to the voxel budget if needed.

    All inputs in the same (transposed) axis order. Returns (image size, possibly coarsened target spacing,
    whether it was shrunk).
    """
    target = np.asarray(target_spacing, dtype=float)
    extents = np.percentile(np.asarray(sizes, dtype=float) * np.asarray(spacings, dtype=float), percentile, axis=0)
    image_size = _ceil(extents / target)
    voxels = math.prod(image_size)
    if voxels <= budget:
        return image_size, [float(t) for t in target], False
    ratio = (budget / voxels) ** (1 / 3)
    return _ceil(np.asarray(image_size) * ratio), [float(t) for t in target / ratio], True


def plan_batch_size(image_size: Sequence[int], shrunk: bool, num_cases: int, budget: int = VOXEL_BUDGET) -> int:
    """max(2, floor(2 s)) with s = cbrt(budget / voxels), or budget / voxels after a shrink; capped by a fold's
    cases."""
    voxels = math.prod(int(s) for s in image_size)
    scale = budget / voxels if shrunk else (budget / voxels) ** (1 / 3)
    batch = max(2, math.floor(2 * scale + 1e-9))
    training_cases_per_fold = max(1, num_cases - math.ceil(num_cases / NUM_FOLDS))
    return min(batch, training_cases_per_fold)


def plan_experiment(
    task_name: str,
    description: DatasetDescription,
    fingerprint: DatasetFingerprint,
    uses_roi: bool,
    options: PlanningOptions = PlanningOptions(),
) -> Plans:
    """Turn a dataset fingerprint (made with `options.margin`) into plans."""
    cases = fingerprint.cases
    sizes = np.array([c.size_after_cropping for c in cases], dtype=float)
    spacings = np.array([c.spacing for c in cases], dtype=float)
    target = plan_target_spacing(spacings, sizes)
    forward, backward = plan_transpose(target)
    percentile = options.size_percentile if options.size_rule == "percentile" else 100.0
    image_size, target_spacing, shrunk = plan_image_size(
        sizes[:, forward], spacings[:, forward], target[forward], percentile=percentile
    )
    schemes = [scheme_for_modality(m) for m in description.modalities]
    use_mask = fingerprint.median_size_reduction < MASK_SIZE_REDUCTION_THRESHOLD
    num_roi_classes = len(description.roi_labels) if uses_roi and description.roi_labels else 2
    return Plans(
        task_name=task_name,
        modalities=list(description.modalities),
        normalization_schemes=schemes,
        use_mask_for_norm=[use_mask and scheme == ZSCORE for scheme in schemes],
        intensity_properties=deepcopy(fingerprint.intensity_properties),
        transpose_forward=forward,
        transpose_backward=backward,
        target_spacing=target_spacing,
        image_size=image_size,
        batch_size=plan_batch_size(image_size, shrunk, len(cases)),
        do_dummy_2D_data_aug=max(image_size) / image_size[0] > ANISOTROPY_FACTOR,
        num_roi_classes=num_roi_classes,
        uses_roi=uses_roi,
        classification_labels=list(description.classification_labels),
        num_training_cases=len(cases),
        covariates=list(description.covariates),
        size_rule=options.size_rule,
        size_percentile=percentile,
        roi_margin_fraction=options.roi_margin_fraction,
        roi_margin_mm=options.roi_margin_mm,
        roi_from_body=options.body_roi and not uses_roi,
    )
