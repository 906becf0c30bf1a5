"""Plan and preprocess a task: validate, fingerprint, plan, and write the preprocessed training cases."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from universalclassifier.atomic import write_json_atomic
from universalclassifier.dataset.validation import CaseFiles, ValidatedTask, validate_task
from universalclassifier.errors import UserInputError
from universalclassifier.names import file_name_for
from universalclassifier.parallel import map_with_progress
from universalclassifier.paths import TaskPaths, resolve_data_root
from universalclassifier.planning.fingerprint import dataset_fingerprint, fingerprint_case
from universalclassifier.planning.planner import PlanningOptions, plan_experiment
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
    targets, group and covariates), CASE being the case id's `file_name_for`."""
    array, properties = preprocess_case(
        case.case_id, list(case.images), case.roi, plans,
        max_input_voxels=limits.max_input_voxels, max_resampled_voxels=limits.max_resampled_voxels,
    )
    properties = replace(
        properties, classification_targets=case.targets, group=case.group, covariates=case.covariates or None
    )
    stem = file_name_for(case.case_id)
    np.save(out_folder / f"{stem}.npy", array)
    (out_folder / f"{stem}.json").write_text(json.dumps(properties.to_dict(), indent=2) + "\n")
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
    planning: PlanningOptions = PlanningOptions(),
) -> Plans:
    """Validate a raw task, fingerprint it, write plans and (unless `preprocess` is False) the training arrays.

    Everything is written under DATA/preprocessed/<task name> (TaskXXX_Name, or DatasetXXX_Name for an nnU-Net v2
    dataset); the raw folder is only read. A user's splits_final.json there is kept. The arrays are built in a
    temporary folder that replaces the stage folder only once every case is done (with a completion marker naming
    the cases and the plans' hash); the plans file is written after that, so an interrupted run never leaves new
    plans beside arrays that training would accept.
    `limits` bounds the images' sizes (see `InputLimits`); `planning` sets the image-size rule and ROI margin.
    """
    paths = TaskPaths.find(data_root, task)
    validated = _validate(paths, num_workers, show_progress, limits)
    return _plan_validated(paths, validated, num_workers, preprocess, show_progress, limits, planning)


def plan_and_preprocess_tasks(
    data_root: Path | str,
    tasks: Sequence[str | int],
    num_workers: int = 2,
    preprocess: bool = True,
    show_progress: bool = True,
    limits: InputLimits = InputLimits(),
    planning: PlanningOptions = PlanningOptions(),
) -> dict[str, Plans]:
    """Plan and preprocess several tasks (`-t 17 18`, as in nnU-Net); returns the plans by task name.

    Every task is found and validated before any of them is fingerprinted or preprocessed: if one fails, one error
    names every failing task with its problems and nothing is written. Then the tasks are planned one by one; a
    task that fails there is reported and the others still run, and one error at the end names the tasks that
    succeeded and those that failed. A single task behaves exactly as `plan_and_preprocess`.
    """
    if not tasks:
        raise UserInputError("No task given; pass one or more task ids or names (-t 1 2 or -t Dataset001_Name).")
    if len(tasks) == 1:
        plans = plan_and_preprocess(data_root, tasks[0], num_workers, preprocess, show_progress, limits, planning)
        return {plans.task_name: plans}
    root = resolve_data_root(data_root)
    found: dict[str, TaskPaths] = {}
    validated: dict[str, ValidatedTask] = {}
    failed: list[tuple[str, str]] = []
    for task in tasks:  # find and validate every task before any heavy work; validation writes nothing
        try:
            paths = TaskPaths.find(root, task)
        except UserInputError as exc:
            failed.append((f"task '{task}'", str(exc)))
            continue
        if paths.task_name in found:
            logger.warning("Task '%s' is %s, given before; planning it once.", task, paths.task_name)
            continue
        found[paths.task_name] = paths
        try:
            validated[paths.task_name] = _validate(paths, num_workers, show_progress, limits)
        except UserInputError as exc:
            failed.append((paths.task_name, str(exc)))
    if failed:
        listing = "\n".join(f"{name}: {message}" for name, message in failed)
        valid = f" (not even the valid {', '.join(validated)})" if validated else ""
        total = len(validated) + len(failed)  # distinct tasks
        raise UserInputError(
            f"{len(failed)} of {total} tasks failed validation ({', '.join(name for name, _ in failed)}); "
            f"nothing was planned or preprocessed{valid}. Fix them and run again:\n{listing}"
        )
    done: dict[str, Plans] = {}
    for index, (name, paths) in enumerate(found.items(), 1):
        logger.info("Planning task %d of %d: %s", index, len(found), name)
        try:
            done[name] = _plan_validated(
                paths, validated[name], num_workers, preprocess, show_progress, limits, planning
            )
        except UserInputError as exc:
            logger.error("Task %s failed: %s", name, exc)
            failed.append((name, str(exc)))
        except Exception as exc:  # one task's failure must not stop the others; the summary names it
            logger.exception("Task %s failed", name)
            failed.append((name, f"{type(exc).__name__}: {exc}"))
    if failed:
        raise UserInputError(
            f"{len(failed)} of {len(found)} tasks failed: "
            + "; ".join(f"{name} ({message.splitlines()[0] if message else 'no message'})" for name, message in failed)
            + f". Succeeded: {', '.join(done) if done else 'none'}. See the log above; re-run the failed tasks alone."
        )
    logger.info("Planned%s %d tasks: %s", " and preprocessed" if preprocess else "", len(done), ", ".join(done))
    return done


def _validate(paths: TaskPaths, num_workers: int, show_progress: bool, limits: InputLimits) -> ValidatedTask:
    logger.info("Validating %s from %s", paths.task_name, paths.raw)
    validated = validate_task(paths.raw, num_workers, show_progress, limits.max_input_voxels)
    if validated.description.nnunet_version == 2:
        logger.info("%s: read as an nnU-Net v2 dataset.json (channel_names, labels as name -> value)", paths.task_name)
    return validated


def _plan_validated(
    paths: TaskPaths,
    validated: ValidatedTask,
    num_workers: int,
    preprocess: bool,
    show_progress: bool,
    limits: InputLimits,
    planning: PlanningOptions,
) -> Plans:
    """Fingerprint, plan and (unless `preprocess` is False) preprocess a task that passed validation."""
    description = validated.description
    paths.preprocessed.mkdir(parents=True, exist_ok=True)
    remove_leftovers(paths)

    generated_folder = paths.preprocessed / GENERATED_ROI_FOLDER
    if validated.uses_roi:
        roi_files = {c.case_id: c.roi for c in validated.cases if c.roi is not None}  # validated: every case has one
    else:
        generated_folder.mkdir(exist_ok=True)
        roi_files = {c.case_id: generated_folder / f"{file_name_for(c.case_id)}.nii.gz" for c in validated.cases}
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
                    planning.margin,
                    planning.body_roi,
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

    plans = plan_experiment(paths.task_name, description, fingerprint, validated.uses_roi, planning)
    if preprocess:
        _preprocess_stage(validated, paths, plans, num_workers, show_progress, limits)
    else:
        _warn_about_stale_arrays(paths, plans)
    plans.save(paths.plans_file)
    logger.info(
        "Plans: image size %s (size rule %s, percentile %g) at spacing %s (axes %s), batch size %d, normalization %s; "
        "written to %s",
        plans.image_size,
        plans.size_rule,
        plans.size_percentile,
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
