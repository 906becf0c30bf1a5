"""Validation of a raw task folder before any heavy work; every problem found is reported in one error."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from universalclassifier.covariates import CovariateValue
from universalclassifier.dataset.dataset_json import DatasetDescription, TrainingEntry, read_dataset_json
from universalclassifier.dataset.dicom_seg import is_dicom_seg, read_roi
from universalclassifier.dataset.image_io import (
    IMAGE_EXTENSIONS,
    MAX_INPUT_VOXELS,
    Geometry,
    compare_geometry,
    grid_problems,
    is_existing_file,
    is_existing_folder,
    is_existing_image,
    read_geometry,
    split_extension,
)
from universalclassifier.errors import TaskValidationError, UserInputError
from universalclassifier.parallel import map_with_progress

logger = logging.getLogger(__name__)

_MODALITY_SUFFIX = re.compile(r"^(?P<case>.+)_(?P<modality>\d{4})$")


@dataclass(frozen=True)
class CaseFiles:
    """The files of one training case: one image per modality (dataset.json order), an optional ROI, its targets
    (None: unknown), its group (patient) and its covariate values."""

    case_id: str
    images: tuple[Path, ...]
    roi: Path | None
    targets: dict[str, int | float | None]
    group: str | None = None
    covariates: dict[str, CovariateValue] = field(default_factory=dict)


@dataclass
class ValidatedTask:
    """A raw task that passed validation."""

    folder: Path
    description: DatasetDescription
    cases: list[CaseFiles]
    uses_roi: bool


def find_modality_file(folder: Path, case_id: str, modality: int, preferred_ext: str) -> Path | None:
    """The file `CASE_XXXX.<ext>` in `folder`, trying the preferred extension first, else the folder `CASE_XXXX/`
    (a DICOM series)."""
    extensions = (
        [preferred_ext] + [e for e in IMAGE_EXTENSIONS if e != preferred_ext] if preferred_ext else IMAGE_EXTENSIONS
    )
    for ext in extensions:
        candidate = folder / f"{case_id}_{modality:04d}{ext}"
        if is_existing_file(candidate):
            return candidate
    series_folder = folder / f"{case_id}_{modality:04d}"
    return series_folder if is_existing_folder(series_folder) else None


def _resolve_case(
    task_folder: Path, entry: TrainingEntry, modalities: tuple[str, ...], problems: list[str]
) -> tuple[tuple[Path, ...], Path | None]:
    image_ref = task_folder / entry.image
    ext = split_extension(image_ref)[1]
    images = []
    for index, name in enumerate(modalities):
        found = find_modality_file(image_ref.parent, entry.case_id, index, ext)
        if found is None:
            expected = (image_ref.parent / f"{entry.case_id}_{index:04d}{ext or '.nii.gz'}").relative_to(task_folder)
            series_folder = expected.with_name(f"{entry.case_id}_{index:04d}")
            problems.append(
                f"case {entry.case_id}: missing modality {index} ({name}) file {expected} (or a DICOM series folder "
                f"{series_folder}/); add it or remove the case from 'training' in dataset.json."
            )
        else:
            images.append(found)
    roi = None
    if entry.label is not None:
        roi = task_folder / entry.label
        if not is_existing_image(roi):  # a file, or a folder holding a DICOM series
            problems.append(
                f"case {entry.case_id}: ROI file {entry.label} (its 'label' entry) does not exist; add the "
                "segmentation or fix the path."
            )
            roi = None
    return tuple(images), roi


def _default_roi_file(task_folder: Path, entry: TrainingEntry) -> Path | None:
    ext = split_extension(entry.image)[1] or ".nii.gz"
    candidate = task_folder / "labelsTr" / f"{entry.case_id}{ext}"
    return candidate if is_existing_file(candidate) else None


def _check_roi_rule(task_folder: Path, description: DatasetDescription, problems: list[str]) -> bool:
    """Apply the all-or-nothing ROI rule; returns whether the task uses ROIs."""
    entries = description.training
    with_label = [e.case_id for e in entries if e.label is not None]
    without_label = [e.case_id for e in entries if e.label is None]
    labels_set = description.raw.get("labels") is not None
    if labels_set and not with_label:
        on_disk = [e.case_id for e in entries if _default_roi_file(task_folder, e)]
        hint = f" ({len(on_disk)} ROI files exist in labelsTr: add a 'label' entry for each case)" if on_disk else ""
        problems.append(
            "dataset.json sets 'labels' (an ROI map) but no training case has a 'label' entry with its ROI "
            f"file{hint}; either give every case an ROI segmentation or remove 'labels'."
        )
        return False
    if with_label and not labels_set:
        problems.append(
            f"{len(with_label)} training case(s) have a 'label' (ROI) entry but dataset.json has no 'labels' map; "
            'add \'labels\' such as {"0": "background", "1": "roi"} or remove the \'label\' entries.'
        )
    if with_label and without_label:
        problems.append(
            f"ROI segmentations are all-or-nothing: {len(with_label)} case(s) have a 'label' entry but "
            f"{len(without_label)} do not ({_preview(without_label)}); add ROI files for those cases or remove all "
            "'label' entries and 'labels'."
        )
    if not with_label and not labels_set:
        on_disk = [e.case_id for e in entries if _default_roi_file(task_folder, e)]
        if on_disk:
            problems.append(
                f"labelsTr holds ROI files for {len(on_disk)} case(s) ({_preview(on_disk)}) but dataset.json has "
                "neither 'labels' nor 'label' entries; add both to use the ROIs, or move labelsTr out of the task."
            )
    return bool(with_label)


def _preview(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


def _short_list(values: list, limit: int = 10) -> str:
    """A list as Python prints it, cut after `limit` items."""
    return str(values) if len(values) <= limit else f"{str(values[:limit])[:-1]}, ... ({len(values) - limit} more)]"


def _stray_cases(task_folder: Path, entries: list[TrainingEntry]) -> list[str]:
    folder = task_folder / "imagesTr"
    if not folder.is_dir():
        return []
    known = {e.case_id for e in entries}
    stray = set()
    for path in folder.iterdir():
        stem, ext = split_extension(path)
        match = _MODALITY_SUFFIX.match(stem)
        if (ext or is_existing_folder(path)) and match and match.group("case") not in known:
            stray.add(path.name)
    return sorted(stray)


class CaseCheck(NamedTuple):
    """What `check_case_files` found in one case."""

    problems: list[str]
    warnings: list[str]
    roi_has_foreground: bool | None  # None when the ROI was not read


def check_case_files(
    case_id: str,
    images: tuple[Path, ...],
    roi: Path | None,
    roi_label_values: tuple[int, ...] | None,
    max_input_voxels: int = MAX_INPUT_VOXELS,
) -> CaseCheck:
    """Header and ROI checks of one case: problems, warnings and whether its ROI has foreground.

    A DICOM-SEG ROI has no grid of its own: instead of the header comparison, its frames must lie on the slices of
    the first image (checked when it is rasterized for the value check).
    """
    problems: list[str] = []
    warnings: list[str] = []
    geometries: list[tuple[Path, Geometry]] = []
    headers = images + ((roi,) if roi is not None and not is_dicom_seg(roi) else ())
    for path in headers:
        try:
            geometry = read_geometry(path)
        except UserInputError as exc:
            problems.append(f"case {case_id}: {exc}")
            continue
        if geometry.dimension != 3:
            problems.append(
                f"case {case_id}: {path.name} is a {geometry.dimension}D image; every image and ROI must be 3D "
                "(store each modality as its own 3D file)."
            )
            continue
        if geometry.components != 1:
            problems.append(
                f"case {case_id}: {path.name} has {geometry.components} components per voxel; every image and ROI "
                "must be a single-channel 3D image (store each modality as its own file)."
            )
            continue
        grid = grid_problems(geometry, max_input_voxels)
        if grid:
            problems.append(f"case {case_id}: {path.name} {'; '.join(grid)}.")
            continue
        geometries.append((path, geometry))
    if len(geometries) > 1:
        reference = geometries[0][1]
        for path, geometry in geometries[1:]:
            for difference in compare_geometry(reference, geometry, path.name):
                problems.append(
                    f"case {case_id}: {difference} ({geometries[0][0].name}); resample it onto the same grid."
                )
    if roi is None or roi_label_values is None or problems or not geometries:  # none: a SEG ROI without images
        return CaseCheck(problems, warnings, None)
    reference_path, reference = geometries[0]
    try:
        values, _ = read_roi(
            roi, reference, dtype=np.float64, max_voxels=max_input_voxels, reference_name=reference_path.name
        )
    except UserInputError as exc:
        return CaseCheck([f"case {case_id}: {exc}"], warnings, None)
    present = np.unique(values)
    finite = present[np.isfinite(present)]
    non_integer = finite[finite != np.round(finite)]
    unknown = [int(v) if abs(v) < 2**53 else v for v in finite[~np.isin(finite, roi_label_values)].tolist()]
    if finite.size != present.size:
        problems.append(f"case {case_id}: ROI {roi.name} holds NaN or inf values; save it as an integer label map.")
    elif non_integer.size:
        problems.append(
            f"case {case_id}: ROI {roi.name} holds non-integer values {non_integer[:5].tolist()}; save it "
            "as an integer label map."
        )
    elif unknown:
        problems.append(
            f"case {case_id}: ROI {roi.name} holds values {_short_list(unknown)} that are not in dataset.json 'labels' "
            f"{_short_list(list(roi_label_values))}; add them to 'labels' or fix the segmentation."
        )
    has_foreground = bool(np.any(present > 0))
    if not problems and not has_foreground:
        warnings.append(f"case {case_id}: ROI {roi.name} has no foreground; this case falls back to the nonzero crop.")
    return CaseCheck(problems, warnings, has_foreground)


def validate_task(
    task_folder: Path, num_workers: int = 1, show_progress: bool = True, max_input_voxels: int = MAX_INPUT_VOXELS
) -> ValidatedTask:
    """Check a raw task folder and return its resolved cases, or raise one error listing every problem.

    The checks and their messages are those of the README section "Errors and how to fix them". Images with more
    than `max_input_voxels` voxels (read from their headers) are refused.
    """
    description, problems = read_dataset_json(task_folder / "dataset.json")
    uses_roi = _check_roi_rule(task_folder, description, problems)
    declared = description.raw.get("numTraining")
    if declared is not None and declared != len(description.training):
        logger.warning(
            "dataset.json says numTraining=%s but lists %d training cases.", declared, len(description.training)
        )
    stray = _stray_cases(task_folder, description.training)
    if stray:
        logger.warning("imagesTr holds %d file(s) of cases not listed in dataset.json: %s", len(stray), _preview(stray))
    cases = []
    for entry in description.training:
        images, roi = _resolve_case(task_folder, entry, description.modalities, problems)
        roi_file = roi if uses_roi else None
        cases.append(CaseFiles(entry.case_id, images, roi_file, entry.targets, entry.group, entry.covariates))
    roi_values = tuple(description.roi_labels) if description.roi_labels is not None else None
    checkable = [c for c in cases if len(c.images) == description.num_modalities]
    results = map_with_progress(
        check_case_files,
        [(c.case_id, c.images, c.roi, roi_values, max_input_voxels) for c in checkable],
        num_workers,
        "Validating",
        show_progress,
    )
    foreground = []
    for check in results:
        problems.extend(check.problems)
        for warning in check.warnings:
            logger.warning(warning)
        foreground.append(check.roi_has_foreground)
    if uses_roi and foreground and not any(foreground) and None not in foreground:
        problems.append(
            "no training case's ROI has any foreground (every ROI file holds only 0); the ROIs must mark the "
            "regions to classify: fix the segmentations, or remove every 'label' entry and 'labels' to use the "
            "whole images."
        )
    if problems:
        raise TaskValidationError(str(task_folder), problems)
    logger.info(
        "Task %s: %d training cases, %d modalities %s, %d classification label(s), ROIs: %s",
        task_folder.name,
        len(cases),
        description.num_modalities,
        list(description.modalities),
        len(description.classification_labels),
        "yes" if uses_roi else "no (an all-foreground ROI is used)",
    )
    for head in description.classification_labels:
        unknown = sum(case.targets.get(head.name) is None for case in cases)
        if unknown:
            logger.info(
                "Head '%s': %d of %d training cases have no value (left out of its loss and metrics).",
                head.name,
                unknown,
                len(cases),
            )
    return ValidatedTask(task_folder, description, cases, uses_roi)
