"""Plan and preprocess a task: validate, fingerprint, plan, and write the preprocessed training cases."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np

from universalclassifier.dataset.validation import ValidatedTask, validate_task
from universalclassifier.parallel import map_with_progress
from universalclassifier.paths import TaskPaths
from universalclassifier.planning.fingerprint import dataset_fingerprint, fingerprint_case
from universalclassifier.planning.planner import plan_experiment
from universalclassifier.plans import Plans
from universalclassifier.preprocessing.normalization import CT
from universalclassifier.preprocessing.preprocessor import preprocess_case

logger = logging.getLogger(__name__)

GENERATED_ROI_FOLDER = "generated_rois"
FINGERPRINT_FILENAME = "dataset_fingerprint.json"
FINGERPRINT_SEED = 1234


def preprocess_and_save(
    case_id: str, image_files: list[Path], roi_file: Path | None, plans: Plans, targets: dict, out_folder: Path
) -> str:
    """Preprocess one training case and store it as CASE.npy (memory-mappable) plus CASE.json (properties)."""
    array, properties = preprocess_case(case_id, image_files, roi_file, plans)
    properties["classification_targets"] = targets
    np.save(out_folder / f"{case_id}.npy", array)
    (out_folder / f"{case_id}.json").write_text(json.dumps(properties, indent=2) + "\n")
    return case_id


def _write_effective_dataset_json(task: ValidatedTask, paths: TaskPaths, roi_files: dict[str, Path]) -> None:
    """dataset.json as the pipeline uses it: absolute paths, and the generated ROIs when the task has none."""
    effective = dict(task.description.raw)
    if not task.uses_roi:
        effective["labels"] = {"0": "background", "1": "foreground"}
    entries = []
    for raw_entry, case in zip(task.description.training, task.cases):
        entry = {"image": str(task.folder / raw_entry.image)}
        entry.update(case.targets)
        entry["label"] = str(roi_files[case.case_id])
        entries.append(entry)
    effective["training"] = entries
    effective["numTraining"] = len(entries)
    effective["raw_task_folder"] = str(task.folder)
    effective["uses_roi"] = task.uses_roi
    (paths.preprocessed / "dataset.json").write_text(json.dumps(effective, indent=2) + "\n")


def plan_and_preprocess(
    data_root: Path | str,
    task: str | int,
    num_workers: int = 2,
    preprocess: bool = True,
    show_progress: bool = True,
) -> Plans:
    """Validate a raw task, fingerprint it, write plans and (unless `preprocess` is False) the training arrays.

    Everything is written under DATA/preprocessed/TaskXXX_Name; the raw folder is only read. A user's
    splits_final.json there is kept.
    """
    paths = TaskPaths.find(data_root, task)
    logger.info("Planning %s from %s", paths.task_name, paths.raw)
    validated = validate_task(paths.raw, num_workers, show_progress)
    description = validated.description
    paths.preprocessed.mkdir(parents=True, exist_ok=True)

    generated_folder = paths.preprocessed / GENERATED_ROI_FOLDER
    if validated.uses_roi:
        roi_files = {c.case_id: c.roi for c in validated.cases}
    else:
        generated_folder.mkdir(exist_ok=True)
        roi_files = {c.case_id: generated_folder / f"{c.case_id}.nii.gz" for c in validated.cases}
    ct_channels = [i for i, m in enumerate(description.modalities) if m.upper() == CT]
    case_fingerprints = list(
        map_with_progress(
            fingerprint_case,
            [
                (c.case_id, c.images, c.roi, ct_channels, FINGERPRINT_SEED, None if validated.uses_roi else roi_files[c.case_id])
                for c in validated.cases
            ],
            num_workers,
            "Fingerprint",
            show_progress,
        )
    )
    fingerprint = dataset_fingerprint(case_fingerprints, description.modalities, ct_channels)
    (paths.preprocessed / FINGERPRINT_FILENAME).write_text(json.dumps(fingerprint, indent=2) + "\n")
    _write_effective_dataset_json(validated, paths, roi_files)

    plans = plan_experiment(paths.task_name, description, fingerprint, validated.uses_roi)
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
    if not preprocess:
        return plans

    if paths.stage_folder.exists():
        shutil.rmtree(paths.stage_folder)
    paths.stage_folder.mkdir()
    done = map_with_progress(
        preprocess_and_save,
        [(c.case_id, c.images, c.roi, plans, c.targets, paths.stage_folder) for c in validated.cases],
        num_workers,
        "Preprocessing",
        show_progress,
    )
    count = sum(1 for _ in done)
    logger.info("Preprocessed %d cases into %s", count, paths.stage_folder)
    return plans
