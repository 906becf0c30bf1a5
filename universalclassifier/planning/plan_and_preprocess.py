"""Plan and preprocess a task: validate, fingerprint, plan, and write the preprocessed training cases."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np

from universalclassifier.atomic import write_json_atomic
from universalclassifier.dataset.validation import CaseFiles, ValidatedTask, validate_task
from universalclassifier.parallel import map_with_progress
from universalclassifier.paths import TaskPaths
from universalclassifier.planning.fingerprint import dataset_fingerprint, fingerprint_case
from universalclassifier.planning.planner import plan_experiment
from universalclassifier.planning.stage import new_stage_folder, read_marker, remove_leftovers, seal_and_publish
from universalclassifier.plans import Plans
from universalclassifier.preprocessing.normalization import CT
from universalclassifier.preprocessing.preprocessor import InputLimits, preprocess_case

logger = logging.getLogger(__name__)

GENERATED_ROI_FOLDER = "generated_rois"
FINGERPRINT_FILENAME = "dataset_fingerprint.json"
FINGERPRINT_SEED = 1234


def preprocess_and_save(case: CaseFiles, plans: Plans, out_folder: Path, limits: InputLimits = InputLimits()) -> str:
    """Preprocess one training case and store it as CASE.npy (memory-mappable) plus CASE.json (properties with the
    targets, group and covariates)."""
    array, properties = preprocess_case(
        case.case_id, list(case.images), case.roi, plans,
        max_input_voxels=limits.max_input_voxels, max_resampled_voxels=limits.max_resampled_voxels,
    )
    properties = replace(
        properties, classification_targets=case.targets, group=case.group, covariates=case.covariates or None
    )
    np.save(out_folder / f"{case.case_id}.npy", array)
    (out_folder / f"{case.case_id}.json").write_text(json.dumps(properties.to_dict(), indent=2) + "\n")
    return case.case_id


def _write_effective_dataset_json(task: ValidatedTask, paths: TaskPaths, roi_files: dict[str, Path]) -> None:
    """dataset.json as the pipeline uses it: absolute paths, and the generated ROIs when the task has none."""
    effective = dict(task.description.raw)
    if not task.uses_roi:
        effective["labels"] = {"0": "background", "1": "foreground"}
    entries = []
    for raw_entry, case in zip(task.description.training, task.cases, strict=True):
        entry: dict[str, object] = {"image": str(task.folder / raw_entry.image)}
        entry.update(case.targets)
        if case.group is not None:
            entry["patient_id"] = case.group
        if case.covariates:
            entry["covariates"] = case.covariates
        entry["label"] = str(roi_files[case.case_id])
        entries.append(entry)
    effective["training"] = entries
    effective["numTraining"] = len(entries)
    effective["raw_task_folder"] = str(task.folder)
    effective["uses_roi"] = task.uses_roi
    write_json_atomic(paths.preprocessed / "dataset.json", effective)


def plan_and_preprocess(
    data_root: Path | str,
    task: str | int,
    num_workers: int = 2,
    preprocess: bool = True,
    show_progress: bool = True,
    limits: InputLimits = InputLimits(),
) -> Plans:
    """Validate a raw task, fingerprint it, write plans and (unless `preprocess` is False) the training arrays.

    Everything is written under DATA/preprocessed/TaskXXX_Name; the raw folder is only read. A user's
    splits_final.json there is kept. The arrays are built in a temporary folder that replaces the stage folder
    only once every case is done (with a completion marker naming the cases and the plans' hash); the plans file
    is written after that, so an interrupted run never leaves new plans beside arrays that training would accept.
    `limits` bounds the images' sizes (see `InputLimits`).
    """
    paths = TaskPaths.find(data_root, task)
    logger.info("Planning %s from %s", paths.task_name, paths.raw)
    validated = validate_task(paths.raw, num_workers, show_progress, limits.max_input_voxels)
    description = validated.description
    paths.preprocessed.mkdir(parents=True, exist_ok=True)
    remove_leftovers(paths)

    generated_folder = paths.preprocessed / GENERATED_ROI_FOLDER
    if validated.uses_roi:
        roi_files = {c.case_id: c.roi for c in validated.cases if c.roi is not None}  # validated: every case has one
    else:
        generated_folder.mkdir(exist_ok=True)
        roi_files = {c.case_id: generated_folder / f"{c.case_id}.nii.gz" for c in validated.cases}
    ct_channels = [i for i, m in enumerate(description.modalities) if m.upper() == CT]
    case_fingerprints = list(
        map_with_progress(
            fingerprint_case,
            [
                (
                    c.case_id,
                    c.images,
                    c.roi,
                    ct_channels,
                    FINGERPRINT_SEED,
                    None if validated.uses_roi else roi_files[c.case_id],
                )
                for c in validated.cases
            ],
            num_workers,
            "Fingerprint",
            show_progress,
        )
    )
    fingerprint = dataset_fingerprint(case_fingerprints, description.modalities, ct_channels)
    write_json_atomic(paths.preprocessed / FINGERPRINT_FILENAME, fingerprint.to_dict())
    _write_effective_dataset_json(validated, paths, roi_files)

    plans = plan_experiment(paths.task_name, description, fingerprint, validated.uses_roi)
    if preprocess:
        _preprocess_stage(validated, paths, plans, num_workers, show_progress, limits)
    else:
        _warn_about_stale_arrays(paths, plans)
    plans.save(paths.plans_file)
    logger.info(
        "Plans: image size %s at spacing %s (axes %s), batch size %d, normalization %s; written to %s",
        plans.image_size,
        [round(s, 4) for s in plans.target_spacing],
        plans.transpose_forward,
        plans.batch_size,
        plans.normalization_schemes,
        paths.plans_file,
    )
    return plans


def _preprocess_stage(
    validated: ValidatedTask, paths: TaskPaths, plans: Plans, num_workers: int, show_progress: bool,
    limits: InputLimits,
) -> None:
    """Preprocess every training case into a temporary folder, then seal it and swap it in as the stage folder."""
    temporary = new_stage_folder(paths)
    done = map_with_progress(
        preprocess_and_save,
        [(case, plans, temporary, limits) for case in validated.cases],
        num_workers,
        "Preprocessing",
        show_progress,
    )
    case_ids = list(done)
    seal_and_publish(paths, temporary, plans, case_ids)
    logger.info("Preprocessed %d cases into %s", len(case_ids), paths.stage_folder)


def _warn_about_stale_arrays(paths: TaskPaths, plans: Plans) -> None:
    """With -no_pp: say so when existing arrays were made with other plans (training will refuse them)."""
    marker = read_marker(paths.stage_folder)
    if paths.stage_folder.exists() and (marker is None or marker.get("plans_hash") != plans.content_hash()):
        logger.warning(
            "The arrays in %s were not made with these plans; training refuses them until you preprocess again "
            "(run without -no_pp).",
            paths.stage_folder,
        )
