"""The preprocessed stage folder as one unit: built aside, sealed with a completion marker, swapped in whole.

Preprocessing writes every case into a hidden temporary sibling of the stage folder, then a completion marker
(`preprocessing_complete.json`: the case ids, the array shape and the hash of the plans the arrays were made
with), and only then renames the folder into place. Training reads the stage only through
`read_preprocessed_cases`, which refuses a folder without a marker, a marker made with other plans, missing
cases and arrays of the wrong shape, so an interrupted or stale preprocessing can never be trained on silently.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from universalclassifier.atomic import write_json_atomic
from universalclassifier.covariates import check_case_covariates
from universalclassifier.errors import UserInputError
from universalclassifier.json_files import read_json_file
from universalclassifier.names import file_name_for
from universalclassifier.paths import TaskPaths
from universalclassifier.plans import Plans
from universalclassifier.preprocessing.case_properties import CaseProperties

logger = logging.getLogger(__name__)

COMPLETION_MARKER = "preprocessing_complete.json"
_MAX_LISTED = 10


def rerun_command(paths: TaskPaths) -> str:
    """The command that rebuilds plans and arrays of a task."""
    return f"bash uc_plan_and_preprocess.sh {paths.data_root} -t {paths.task_name}"


def expected_shape(plans: Plans) -> list[int]:
    """Shape of every stored case: image channels + the ROI channel, then the planned image size."""
    return [plans.num_modalities + 1, *plans.image_size]


def remove_leftovers(paths: TaskPaths) -> None:
    """Delete temporary stage folders that an interrupted run left behind."""
    for folder in sorted(paths.preprocessed.glob(f".{paths.stage_folder.name}.*")):
        logger.info("Removing %s, left behind by an interrupted preprocessing run", folder)
        shutil.rmtree(folder, ignore_errors=True)


def new_stage_folder(paths: TaskPaths) -> Path:
    """A fresh, hidden temporary folder beside the stage folder (same file system, so it can be renamed)."""
    temporary = paths.preprocessed / f".{paths.stage_folder.name}.partial-{uuid.uuid4().hex[:12]}"
    temporary.mkdir(parents=True)  # not tempfile.mkdtemp: the stage folder keeps the user's umask permissions
    return temporary


def seal_and_publish(paths: TaskPaths, temporary: Path, plans: Plans, case_ids: Sequence[str]) -> None:
    """Write the completion marker into `temporary` and swap it in as the stage folder.

    Every case must already be in `temporary`. The old stage folder is renamed away first and deleted last; a kill
    in between leaves no stage folder (training then asks to preprocess again), never a mix of old and new cases.
    """
    marker = {
        "plans_hash": plans.content_hash(),
        "num_cases": len(case_ids),
        "case_ids": sorted(case_ids),
        "array_shape": expected_shape(plans),
    }
    write_json_atomic(temporary / COMPLETION_MARKER, marker)
    stage = paths.stage_folder
    retired = None
    if stage.exists():
        retired = stage.with_name(f".{stage.name}.old-{uuid.uuid4().hex[:12]}")
        os.rename(stage, retired)
    os.rename(temporary, stage)
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)


def read_marker(stage_folder: Path) -> dict | None:
    """The completion marker of a stage folder, or None when it is missing or unreadable."""
    try:
        marker = read_json_file(stage_folder / COMPLETION_MARKER, "completion marker")
    except UserInputError:
        return None
    return marker if isinstance(marker, dict) else None


def _listed(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    return shown + (f" and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else "")


@dataclass(frozen=True)
class StageCases:
    """The training cases of a stage folder: per case id, its targets in head order (None: unknown), the groups
    (patients) of the cases that have one, every case's covariate values (empty without covariates) and its zoom
    (below 1: resampled down to fit the image size)."""

    targets: dict[str, list[int | float | None]]
    groups: dict[str, str]
    covariates: dict[str, dict[str, float | str | None]]
    zooms: dict[str, float]


def _stored_target(value: object, regression: bool) -> int | float | None:
    """A target as CASE.json stores it, checked: None, an integer value, or a finite number for regression."""
    if value is None:
        return None
    wanted = (int, float) if regression else int
    if isinstance(value, bool) or not isinstance(value, wanted):
        raise ValueError(f"target {value!r} is not a {'number' if regression else 'integer'}")
    return float(value) if regression else value


def _case_problems(
    stage: Path, case_id: str, shape: list[int], plans: Plans
) -> tuple[list[str], list[int | float | None], CaseProperties | None]:
    """Problems of one stored case (missing files, wrong shape, unreadable targets), its targets and properties."""
    stem = file_name_for(case_id)
    array_file, properties_file = stage / f"{stem}.npy", stage / f"{stem}.json"
    if not array_file.is_file() or not properties_file.is_file():
        return [f"case {case_id}: {array_file.name} or {properties_file.name} is missing"], [], None
    try:
        found = list(np.load(array_file, mmap_mode="r").shape)
    except (OSError, ValueError) as exc:
        return [f"case {case_id}: {array_file.name} cannot be read ({exc})"], [], None
    if found != shape:
        return [f"case {case_id}: {array_file.name} has shape {found}, the plans expect {shape}"], [], None
    try:
        properties = CaseProperties.from_dict(read_json_file(properties_file, "case properties"), str(properties_file))
        targets = properties.classification_targets or {}
        values = [_stored_target(targets[h.name], h.is_regression) for h in plans.classification_labels]
        check_case_covariates(plans.covariates, properties.covariates, str(properties_file))
        return [], values, properties
    except (OSError, KeyError, TypeError, ValueError) as exc:  # UserInputError (the reader's) is a ValueError
        return [
            f"case {case_id}: {properties_file.name} is damaged or holds no classification target for every head "
            f"({exc!r})"
        ], [], None


def read_preprocessed_cases(paths: TaskPaths, plans: Plans) -> StageCases:
    """The targets and groups of every case, after checking that the stage folder is complete.

    Refuses (UserInputError naming the folder and the command to re-run) a stage folder without a completion
    marker, one made with other plans, one whose case count differs from the plans' num_training_cases, and
    missing or misshapen cases.
    """
    stage, fix = paths.stage_folder, f"re-run '{rerun_command(paths)}' (without -no_pp)"
    if not stage.is_dir():
        raise UserInputError(f"No preprocessed arrays in {stage}; {fix}.")
    marker = read_marker(stage)
    if marker is None:
        raise UserInputError(
            f"{stage} has no completion marker {COMPLETION_MARKER}: its preprocessing was interrupted or was made by "
            f"an older version, so its cases may be incomplete; {fix}."
        )
    if marker.get("plans_hash") != plans.content_hash():
        raise UserInputError(
            f"The arrays in {stage} were made with other plans than {paths.plans_file} (the plans were re-made, e.g. "
            f"with -no_pp, or a run was interrupted after writing the arrays); {fix}."
        )
    case_ids = marker.get("case_ids")
    if not isinstance(case_ids, list) or len(case_ids) != plans.num_training_cases:
        count = len(case_ids) if isinstance(case_ids, list) else "no"
        raise UserInputError(
            f"{stage} lists {count} case(s) in {COMPLETION_MARKER} but the plans have {plans.num_training_cases} "
            f"training cases; {fix}."
        )
    problems, shape = [], expected_shape(plans)
    cases = StageCases({}, {}, {}, {})
    for case_id in map(str, case_ids):
        found, values, properties = _case_problems(stage, case_id, shape, plans)
        problems += found
        if properties is not None:
            cases.targets[case_id] = values
            cases.covariates[case_id] = properties.covariates or {}
            cases.zooms[case_id] = float(properties.zoom)
            if properties.group is not None:
                cases.groups[case_id] = properties.group
    if problems:
        raise UserInputError(f"{stage} is damaged ({len(problems)} problem(s): {_listed(problems)}); {fix}.")
    return cases
