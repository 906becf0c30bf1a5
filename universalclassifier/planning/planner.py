"""The planner: target spacing, axis order, image size, batch size and normalization from a fingerprint."""

from __future__ import annotations

import math
from collections.abc import Sequence
from copy import deepcopy

import numpy as np
from numpy.typing import ArrayLike

from universalclassifier.dataset.dataset_json import DatasetDescription
from universalclassifier.planning.fingerprint import DatasetFingerprint
from universalclassifier.plans import Plans
from universalclassifier.preprocessing.normalization import ZSCORE, scheme_for_modality

VOXEL_BUDGET = 240**3
ANISOTROPY_FACTOR = 3.0
ANISOTROPIC_PERCENTILE = 10
MASK_SIZE_REDUCTION_THRESHOLD = 0.75
NUM_FOLDS = 5


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
    sizes: np.ndarray, spacings: np.ndarray, target_spacing: ArrayLike, budget: int = VOXEL_BUDGET
) -> tuple[list[int], list[float], bool]:
    """Image size that holds every case at the target spacing, shrunk to the voxel budget if needed.

    All inputs in the same (transposed) axis order. Returns (image size, possibly coarsened target spacing,
    whether it was shrunk).
    """
    target = np.asarray(target_spacing, dtype=float)
    extents = np.max(np.asarray(sizes, dtype=float) * np.asarray(spacings, dtype=float), axis=0)
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
    task_name: str, description: DatasetDescription, fingerprint: DatasetFingerprint, uses_roi: bool
) -> Plans:
    """Turn a dataset fingerprint into plans."""
    cases = fingerprint.cases
    sizes = np.array([c.size_after_cropping for c in cases], dtype=float)
    spacings = np.array([c.spacing for c in cases], dtype=float)
    target = plan_target_spacing(spacings, sizes)
    forward, backward = plan_transpose(target)
    image_size, target_spacing, shrunk = plan_image_size(sizes[:, forward], spacings[:, forward], target[forward])
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
    )
