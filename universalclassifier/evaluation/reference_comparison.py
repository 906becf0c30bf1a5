"""The radiomics reference beside the deep model: its pooled out-of-fold metrics per head (uc_radiomics writes its
predictions in the sibling RadiomicsReference/ folder) and the paired difference deep minus reference."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from universalclassifier.artifact import numbered_fold_folders
from universalclassifier.errors import UserInputError
from universalclassifier.evaluation.bootstrap import bootstrap_auc_ci, bootstrap_auc_difference
from universalclassifier.evaluation.calibration import expected_calibration_error
from universalclassifier.evaluation.graded_metrics import bootstrap_mae_difference, regression_confidence_intervals
from universalclassifier.evaluation.head_summary import head_summary
from universalclassifier.evaluation.pooling import PREDICTIONS_FILE, Pooled, pool_folds, pooled_arrays
from universalclassifier.evaluation.temperature import CALIBRATION_BINS
from universalclassifier.paths import REFERENCE_FOLDER
from universalclassifier.plans import ClassificationLabel

logger = logging.getLogger(__name__)

REFERENCE_LABEL = "Radiomics reference (mirp features + logistic or ridge regression)"


def _paired(common: list[str], difference: tuple[float | None, float | None, float | None]) -> dict:
    """A deep-minus-reference difference as the summary stores it."""
    return {"num_cases": len(common), "difference": difference[0], "ci_95": list(difference[1:])}


def _reference_classification_head(
    head: ClassificationLabel,
    pooled: Pooled,
    deep: Pooled,
    cases: list[str],
    common: list[str],
    num_resamples: int,
    seed: int,
) -> dict:
    """The reference's metrics of a classification head on `cases` (all with a known target) and the AUC
    difference deep minus reference on the `common` cases."""
    name = head.name
    targets, probabilities = pooled_arrays(pooled, name, cases)
    y = np.array(targets, dtype=np.int64)
    difference: tuple[float | None, float | None, float | None] = (None, None, None)
    if common:
        common_targets, deep_probabilities = pooled_arrays(deep, name, common)
        difference = bootstrap_auc_difference(
            np.array(common_targets, dtype=np.int64), deep_probabilities, pooled_arrays(pooled, name, common)[1],
            num_resamples=num_resamples, seed=seed, ordinal=head.ordinal,
        )
    return {
        **head_summary(head, targets, probabilities),
        "auc_ci_95": list(
            bootstrap_auc_ci(y, probabilities, num_resamples=num_resamples, seed=seed, ordinal=head.ordinal)
        ),
        "ece": expected_calibration_error(y, probabilities, CALIBRATION_BINS),
        "deep_minus_reference_auc": _paired(common, difference),
    }


def _reference_regression_head(
    head: ClassificationLabel,
    pooled: Pooled,
    deep: Pooled,
    cases: list[str],
    common: list[str],
    num_resamples: int,
    seed: int,
) -> dict:
    """The reference's metrics of a regression head on `cases` (all with a known target) and the MAE difference
    deep minus reference on the `common` cases."""
    name = head.name
    targets, predictions = pooled_arrays(pooled, name, cases)
    values = np.array(targets, dtype=np.float64)
    intervals = regression_confidence_intervals(values, predictions[:, 0], num_resamples=num_resamples, seed=seed)
    difference: tuple[float | None, float | None, float | None] = (None, None, None)
    if common:
        common_targets, deep_predictions = pooled_arrays(deep, name, common)
        difference = bootstrap_mae_difference(
            np.array(common_targets, dtype=np.float64), deep_predictions[:, 0],
            pooled_arrays(pooled, name, common)[1][:, 0], num_resamples=num_resamples, seed=seed,
        )
    return {
        **head_summary(head, targets, predictions),
        **{f"{metric}_ci_95": ci for metric, ci in intervals.items()},
        "deep_minus_reference_mae": _paired(common, difference),
    }


def reference_summary(
    reference_folder: Path,
    heads: Sequence[ClassificationLabel],
    deep: Pooled,
    task_name: str,
    num_resamples: int,
    seed: int,
) -> dict:
    """Pooled metrics of the radiomics reference beside the deep model, or how to get them when it is missing.

    Per head with known targets: the same metrics as the deep model's rows, plus the AUC (regression heads: MAE)
    difference deep minus reference on the cases both predicted, with a paired bootstrap interval.
    """
    validated = reference_folder.is_dir() and any(
        (fold / PREDICTIONS_FILE).is_file() for fold in numbered_fold_folders(reference_folder)
    )
    missing = {"available": False, "label": REFERENCE_LABEL, "how_to": f"uc_radiomics DATA -t {task_name}"}
    if not validated:
        return missing
    try:
        folds, pooled = pool_folds(reference_folder, heads)
    except UserInputError as exc:  # e.g. made before the task's labels changed: it must not block the deep summary
        logger.warning("The radiomics reference is left out: %s Rerun %s to refresh it.", exc, missing["how_to"])
        return {**missing, "problem": str(exc)}
    summary_heads = {}
    for head in heads:
        cases = [case for case in pooled if pooled[case][1][head.name][0] is not None]
        if cases:
            common = [case for case in cases if case in deep and deep[case][1][head.name][0] is not None]
            compare = _reference_regression_head if head.is_regression else _reference_classification_head
            summary_heads[head.name] = compare(head, pooled, deep, cases, common, num_resamples, seed)
    return {
        "available": True,
        "label": REFERENCE_LABEL,
        "folder": f"../{REFERENCE_FOLDER}",
        "folds": folds,
        "num_cases": len(pooled),
        "heads": summary_heads,
    }


