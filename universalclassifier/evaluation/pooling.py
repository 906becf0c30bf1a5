"""Pooling out-of-fold predictions: every validated fold's predictions.json read, checked against the plans' heads
and pooled per case; the folds a task's splits plan."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from universalclassifier.artifact import numbered_fold_folders
from universalclassifier.errors import UserInputError
from universalclassifier.json_files import read_json_file
from universalclassifier.paths import ArtifactLayout, fold_folder_name
from universalclassifier.planning.planner import NUM_FOLDS
from universalclassifier.plans import ClassificationLabel

logger = logging.getLogger(__name__)

PREDICTIONS_FILE = Path(ArtifactLayout.VALIDATION) / ArtifactLayout.PREDICTIONS_JSON
Pooled = dict[str, tuple[str, dict]]  # {case: (fold, {head: (target, prediction)})}

Prediction = tuple[int | float | None, list[float]]  # (target or None, probabilities or [regression value])


def _entry(path: Path, case_id: str, head: ClassificationLabel, entry: object) -> Prediction:
    """One head's (target, prediction) of a case in predictions.json, checked against the head."""
    key = "prediction" if head.is_regression else "probabilities"
    if not isinstance(entry, dict) or "target" not in entry or key not in entry:
        raise UserInputError(f"{path}: case '{case_id}' has no target and {key} for head '{head.name}'.")
    target, prediction = entry["target"], entry[key]
    prediction = [prediction] if head.is_regression else prediction
    number = (int, float) if head.is_regression else int
    size = head.num_values
    target_ok = target is None or (
        isinstance(target, number) and not isinstance(target, bool) and (head.is_regression or 0 <= target < size)
    )
    if not target_ok or not isinstance(prediction, list) or len(prediction) != size:
        expected = "a number" if head.is_regression else f"a target in 0..{size - 1} and {size} probabilities"
        raise UserInputError(
            f"{path}: case '{case_id}' head '{head.name}' needs {expected} (as in plans.json); the fold was trained "
            "with other plans."
        )
    return target, [float(v) for v in prediction]


def _read_fold(path: Path, heads: Sequence[ClassificationLabel]) -> dict[str, dict[str, Prediction]]:
    """{case: {head: (target, prediction)}} of one predictions.json, checked against the plans' heads."""
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UserInputError(f"{path} is not valid JSON ({exc}); rerun the validation of that fold.") from exc
    if not isinstance(raw, dict):
        raise UserInputError(f"{path} must map case ids to per-head predictions; rerun the validation of that fold.")
    return {
        case_id: {
            head.name: _entry(path, case_id, head, per_head.get(head.name) if isinstance(per_head, dict) else None)
            for head in heads
        }
        for case_id, per_head in raw.items()
    }


def pool_folds(
    trainer_folder: Path, heads: Sequence[ClassificationLabel]
) -> tuple[list[str], Pooled]:
    """The out-of-fold predictions of every validated fold_N of `trainer_folder`: the folds read and
    {case: (fold, {head: (target, prediction)})}; a case seen in an earlier fold is kept from there."""
    pooled: Pooled = {}
    folds = []
    for fold in numbered_fold_folders(trainer_folder):
        path = fold / PREDICTIONS_FILE
        if not path.is_file():
            logger.warning("%s has no %s (not trained or validated yet); it is left out.", fold.name, PREDICTIONS_FILE)
            continue
        folds.append(fold.name)
        for case_id, predictions in _read_fold(path, heads).items():
            if case_id in pooled:
                logger.warning(
                    "Case '%s' is in the validation of both %s and %s; keeping the prediction of %s.",
                    case_id, pooled[case_id][0], fold.name, pooled[case_id][0],
                )
                continue
            pooled[case_id] = (fold.name, predictions)
    if not folds:
        raise UserInputError(
            f"{trainer_folder} holds no fold_N/{PREDICTIONS_FILE.as_posix()}; train (and validate) the folds first."
        )
    return folds, pooled


def pooled_arrays(
    pooled: Pooled, name: str, cases: Sequence[str]
) -> tuple[list[int | float | None], np.ndarray]:
    """Targets (None: unknown) and predictions of head `name` for `cases` of a pooled prediction set."""
    targets = [pooled[c][1][name][0] for c in cases]
    return targets, np.array([pooled[c][1][name][1] for c in cases], dtype=np.float64)


def planned_folds(splits_file: Path | None) -> list[str]:
    """The folds the task's splits_final.json plans (fold_0 .. fold_{n-1}), or the default five without one."""
    if splits_file is not None and Path(splits_file).is_file():
        splits = read_json_file(Path(splits_file), "splits")
        if isinstance(splits, list) and splits:
            return [fold_folder_name(k) for k in range(len(splits))]
        logger.warning("%s is not a list of folds; assuming the default %d folds.", splits_file, NUM_FOLDS)
    return [fold_folder_name(k) for k in range(NUM_FOLDS)]


def warn_missing_folds(folds: Sequence[str], planned: Sequence[str], what: str) -> None:
    """Warn when `what` (e.g. "The cross-validation summary") covers fewer folds than planned."""
    missing = [fold for fold in planned if fold not in folds]
    if missing:
        logger.warning(
            "%s covers %d of %d planned folds (%s); missing: %s. Train (and validate) the missing folds, or read the "
            "results as those of part of the folds only.",
            what, len(folds), len(planned), ", ".join(folds) or "none", ", ".join(missing),
        )

