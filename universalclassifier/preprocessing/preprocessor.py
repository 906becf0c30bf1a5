"""The single-case preprocessor, shared by plan-and-preprocess and prediction so that they cannot drift apart."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.ndimage import binary_fill_holes

from universalclassifier.checks import checked_int
from universalclassifier.dataset.dicom_seg import read_roi
from universalclassifier.dataset.image_io import MAX_INPUT_VOXELS, Geometry, compare_geometry, read_image
from universalclassifier.errors import UserInputError
from universalclassifier.plans import Plans
from universalclassifier.preprocessing.case_properties import CaseProperties
from universalclassifier.preprocessing.cropping import OUTSIDE_BODY, BoundingBox, RoiMargin, crop_case
from universalclassifier.preprocessing.normalization import CT, normalize
from universalclassifier.preprocessing.padding import center_pad_or_crop
from universalclassifier.preprocessing.resampling import (
    MAX_RESAMPLED_VOXELS,
    new_shape_for,
    resample_image,
    resample_labels,
    separate_z_axis,
)

logger = logging.getLogger(__name__)

CT_BODY_HU = -500.0  # tissue threshold for the body of CT cases without ROI files: air is -1000 HU, fat about -100


@dataclass(frozen=True)
class InputLimits:
    """Size bounds checked before the costly steps: voxels in an input file (from its header) and after resampling."""

    max_input_voxels: int = MAX_INPUT_VOXELS
    max_resampled_voxels: int = MAX_RESAMPLED_VOXELS

    def __post_init__(self) -> None:
        checked_int(self.max_input_voxels, "max_input_voxels", 1, UserInputError)
        checked_int(self.max_resampled_voxels, "max_resampled_voxels", 1, UserInputError)


@dataclass
class CroppedCase:
    """A case after loading and the two-step crop, in original axis order."""

    case_id: str
    data: np.ndarray  # (C, Z, Y, X) float32
    roi: np.ndarray  # (Z, Y, X) int16, -1 outside the body
    body: np.ndarray  # (Z, Y, X) bool, filled nonzero mask
    geometry: Geometry
    nonzero_box: BoundingBox
    roi_box: BoundingBox | None

    @property
    def spacing(self) -> tuple[float, ...]:
        return self.geometry.spacing


def load_case(
    case_id: str,
    image_files: Sequence[Path],
    roi_file: Path | None,
    num_roi_classes: int | None = None,
    max_input_voxels: int = MAX_INPUT_VOXELS,
) -> tuple[np.ndarray, np.ndarray, Geometry]:
    """Read all modalities into (C, Z, Y, X) float32 and the ROI into (Z, Y, X) int16 (all ones without an ROI).

    The ROI is an image on the grid of the first image, or a DICOM-SEG file whose frames lie on its slices (see
    `dicom_seg.read_roi`).

    Non-finite voxels are set to 0 with a warning; inputs on different grids, files with more than
    `max_input_voxels` voxels (checked on the header) and, with `num_roi_classes`, ROI values other than the
    integers 0..num_roi_classes-1 are refused.
    """
    channels = []
    reference: Geometry | None = None
    for path in image_files:
        array, geometry = read_image(Path(path), max_voxels=max_input_voxels)
        if reference is None:
            reference = geometry
        else:
            _refuse_mismatch(case_id, reference, geometry, Path(path), Path(image_files[0]))
        bad = ~np.isfinite(array)
        if bad.any():
            logger.warning(
                "case %s: %d NaN/inf voxel(s) in %s replaced by 0.", case_id, int(bad.sum()), Path(path).name
            )
            array[bad] = 0
        channels.append(array)
    if reference is None:
        raise UserInputError(f"case {case_id}: no image files given.")
    if roi_file is None:
        roi = np.ones(reference.size, dtype=np.int16)
    else:
        first = Path(image_files[0])
        roi_array, roi_geometry = read_roi(
            Path(roi_file), reference, dtype=np.float32, max_voxels=max_input_voxels, reference_name=first.name
        )
        _refuse_mismatch(case_id, reference, roi_geometry, Path(roi_file), first)
        if num_roi_classes is not None:
            check_roi_values(case_id, roi_array, Path(roi_file), num_roi_classes)
        roi = np.rint(roi_array).astype(np.int16)
    return np.stack(channels), roi, reference


def check_roi_values(case_id: str, roi: np.ndarray, roi_file: Path, num_roi_classes: int) -> None:
    """Refuse an ROI holding anything but the integer labels 0..num_roi_classes-1 that the plans know."""
    bad = ~((roi >= 0) & (roi < num_roi_classes) & (roi == np.floor(roi)))  # NaN fails every comparison
    if bad.any():
        values = np.unique(roi[bad])
        shown = ", ".join(f"{v:g}" for v in values[:10])
        if values.size > 10:
            shown += f", ... ({values.size - 10} more)"
        raise UserInputError(
            f"case {case_id}: ROI {roi_file} holds value(s) {shown} that are not ROI labels of this model: it was "
            f"trained with the integer labels 0..{num_roi_classes - 1} (num_roi_classes = {num_roi_classes}); fix the "
            "segmentation so that it holds only those labels."
        )


def _refuse_mismatch(case_id: str, reference: Geometry, other: Geometry, path: Path, reference_path: Path) -> None:
    differences = compare_geometry(reference, other, path.name)
    if differences:
        raise UserInputError(
            f"case {case_id}: {'; '.join(differences)} ({reference_path.name}); all inputs of a case must share "
            "one grid: resample them onto the first image."
        )


def load_and_crop(
    case_id: str,
    image_files: Sequence[Path],
    roi_file: Path | None,
    num_roi_classes: int | None = None,
    max_input_voxels: int = MAX_INPUT_VOXELS,
    margin: RoiMargin | None = None,
) -> CroppedCase:
    """Load a case (see `load_case`) and crop it to the nonzero region, then to the ROI with `margin` (default 5%)."""
    data, roi, geometry = load_case(case_id, image_files, roi_file, num_roi_classes, max_input_voxels)
    data, roi, body, nonzero_box, roi_box = crop_case(data, roi, margin, geometry.spacing)
    if roi_file is not None and roi_box is None:
        logger.warning("case %s: ROI has no foreground; using the nonzero crop.", case_id)
    return CroppedCase(case_id, data, roi, body, geometry, nonzero_box, roi_box)


def body_as_roi(case: CroppedCase, ct_channels: Sequence[int] = ()) -> None:
    """For tasks without ROI files: the ROI becomes the body, -1 outside it, so that the network's ROI channel and
    descriptors see the body's shape rather than its bounding box (and CT statistics come from tissue, not air).

    The body is the filled nonzero mask; where the case has CT channels, only its voxels above `CT_BODY_HU` in one of
    them (holes filled), since air (-1000 HU) is nonzero. A CT case without such voxels keeps the nonzero body.
    """
    if ct_channels:
        tissue = binary_fill_holes(np.any(case.data[list(ct_channels)] > CT_BODY_HU, axis=0)) & case.body
        if tissue.any():
            case.body = tissue
    case.roi = np.where(case.body, case.roi, OUTSIDE_BODY).astype(case.roi.dtype)


def preprocess_case(
    case_id: str,
    image_files: Sequence[Path],
    roi_file: Path | None,
    plans: Plans,
    *,
    max_input_voxels: int = MAX_INPUT_VOXELS,
    max_resampled_voxels: int = MAX_RESAMPLED_VOXELS,
) -> tuple[np.ndarray, CaseProperties]:
    """Preprocess one case with a plan: crop, transpose, resample, normalize, fit to the image size.

    With the plans' "percentile" size rule a case larger than the image size is resampled down to fit (its zoom,
    below 1, is in its properties: the network reads its true size with it); with "max" it is cropped centrally.

    Returns a float32 array (modalities + 1, *image_size) whose last channel is the ROI label map (-1 outside
    the body), and the case's properties (without classification targets). Refused with a UserInputError before
    the costly step: input files with more than `max_input_voxels` voxels (from the header), ROI values that are not
    the plans' labels 0..num_roi_classes-1, and a cropped case that would resample to more than
    `max_resampled_voxels`.
    """
    if len(image_files) != plans.num_modalities:
        raise UserInputError(
            f"case {case_id}: got {len(image_files)} image file(s) but the model expects {plans.num_modalities}: one "
            f"per modality {plans.modalities}, in that order."
        )
    if plans.uses_roi and roi_file is None:
        raise UserInputError(
            f"case {case_id}: the model was trained with ROI segmentations; give the case's ROI file "
            "(roi_segmentation_file in predict(), -s for uc_predict.sh)."
        )
    if not plans.uses_roi and roi_file is not None:
        raise UserInputError(
            f"case {case_id}: the model was trained without ROI segmentations; do not give an ROI file."
        )
    case = load_and_crop(case_id, image_files, roi_file, plans.num_roi_classes, max_input_voxels, plans.roi_margin)
    if plans.roi_from_body:
        body_as_roi(case, [c for c, scheme in enumerate(plans.normalization_schemes) if scheme == CT])
    axes = list(plans.transpose_forward)
    data = case.data.transpose([0] + [a + 1 for a in axes])
    roi = case.roi.transpose(axes)
    body = case.body.transpose(axes)
    spacing = [case.spacing[a] for a in axes]
    new_shape = new_shape_for(roi.shape, spacing, plans.target_spacing)
    if math.prod(new_shape) > max_resampled_voxels:
        raise UserInputError(
            f"case {case_id}: resampling its crop of {list(roi.shape)} voxels at spacing "
            f"{[round(s, 4) for s in spacing]} to the model's spacing {[round(s, 4) for s in plans.target_spacing]} "
            f"gives {list(new_shape)} = "
            f"{math.prod(new_shape):,} voxels, more than max_resampled_voxels = {max_resampled_voxels:,} (the model's "
            f"image size is {plans.image_size}). Check the spacing in the image header ({Path(image_files[0])}), or "
            "raise max_resampled_voxels."
        )
    zoom = zoom_to_fit(roi.shape, spacing, plans) if plans.size_rule == "percentile" else 1.0
    if zoom < 1:
        fitted = zip(plans.image_size, roi.shape, spacing, plans.target_spacing, strict=True)
        new_shape = tuple(min(image, max(1, round(n * step / target * zoom))) for image, n, step, target in fitted)
    separate_axis = separate_z_axis(spacing, plans.target_spacing)
    data = resample_image(data, new_shape, separate_axis)
    roi = resample_labels(roi, new_shape, separate_axis)
    body = resample_labels(body, new_shape, separate_axis) if any(plans.use_mask_for_norm) else None
    data = normalize(
        data, plans.normalization_schemes, plans.use_mask_for_norm, plans.intensity_properties, body, f"case {case_id}"
    )
    stacked = np.concatenate([data, roi[None].astype(np.float32)])
    stacked, offsets = center_pad_or_crop(stacked, plans.image_size)
    if any(before < 0 or after < 0 for before, after in offsets):
        logger.warning(
            "case %s: resampled size %s exceeds the plan's image size %s; cropped centrally.",
            case_id,
            list(new_shape),
            plans.image_size,
        )
    properties = CaseProperties(
        case_id=case_id,
        original_size=list(case.geometry.size),
        original_spacing=list(case.geometry.spacing),
        origin=list(case.geometry.origin),
        direction=list(case.geometry.direction),
        nonzero_bbox=case.nonzero_box,
        roi_bbox_in_nonzero_crop=case.roi_box,
        size_after_cropping=list(case.roi.shape),
        spacing_after_resampling=list(plans.target_spacing),
        size_after_resampling=list(new_shape),
        separate_z_axis=separate_axis,
        pad_offsets=offsets,
        roi_classes_present=sorted(int(v) for v in np.unique(case.roi) if v > 0),
        zoom=zoom,
    )
    return np.ascontiguousarray(stacked, dtype=np.float32), properties


def zoom_to_fit(size: Sequence[int], spacing: Sequence[float], plans: Plans) -> float:
    """The factor (at most 1) that shrinks a crop of `size` voxels at `spacing` to fit the plans' image size at their
    target spacing, all in the plans' axis order."""
    extents = [n * step / target for n, step, target in zip(size, spacing, plans.target_spacing, strict=True)]
    return min(1.0, *(image / extent for image, extent in zip(plans.image_size, extents, strict=True)))


def roi_to_unit_interval(roi: np.ndarray, num_roi_classes: int) -> np.ndarray:
    """The ROI as network input: values below 0 (outside the body) become 0, then divide by the class count."""
    return (np.maximum(roi, 0) / np.float32(num_roi_classes)).astype(np.float32)


def to_network_input(array: np.ndarray, num_roi_classes: int) -> np.ndarray:
    """A preprocessed array (ROI label map last) with its ROI channel mapped into [0, 1); the input is not modified."""
    result = np.array(array, dtype=np.float32, copy=True)
    result[-1] = roi_to_unit_interval(result[-1], num_roi_classes)
    return result
