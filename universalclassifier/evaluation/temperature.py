"""Fitting temperature scaling of nominal heads on the pooled out-of-fold predictions (uc_summarize).

T minimizes the negative log-likelihood of the targets (Guo et al. 2017) over [MIN_TEMPERATURE, MAX_TEMPERATURE];
inference/calibration.py applies it. A head keeps its temperature only when it can be trusted to help:
- at least MIN_CALIBRATION_CASES pooled cases with a known value, and at least two different values among them;
- at least two folds, so that the ECE after scaling can be cross-fitted (each fold's cases scaled with the
  temperature fitted on the other folds' cases);
- that cross-fitted ECE is below the ECE without scaling.
Otherwise the head gets T = 1 (no scaling) and the reason. A temperature on a bound of the search is kept or not by the
same rule, with a warning (the predictions hardly separate the values, or too few cases).

calibration.json records the plans hash and the `checkpoint_id` of every fold's final checkpoint, so that it is not
applied after a fold was retrained or to folds it was not fitted on.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import minimize_scalar

from universalclassifier.atomic import write_json_atomic
from universalclassifier.errors import UserInputError
from universalclassifier.evaluation.calibration import expected_calibration_error
from universalclassifier.inference.calibration import (
    CALIBRATION_FILE,
    CALIBRATION_FORMAT_VERSION,
    MAX_TEMPERATURE,
    MIN_TEMPERATURE,
    apply_temperature,
)
from universalclassifier.json_files import read_json_file
from universalclassifier.paths import ArtifactLayout
from universalclassifier.plans import Plans

logger = logging.getLogger(__name__)

MIN_CALIBRATION_CASES = 20
CALIBRATION_BINS = 10
_FLOOR = 1e-12
_BOUND_TOLERANCE = 1e-3  # relative: a fit this close to a search bound counts as on it


def _negative_log_likelihood(targets: np.ndarray, probabilities: np.ndarray, temperature: float) -> float:
    scaled = apply_temperature(probabilities, temperature)
    return float(-np.mean(np.log(np.clip(scaled[np.arange(len(targets)), targets], _FLOOR, 1.0))))


def fit_temperature(targets: ArrayLike, probabilities: np.ndarray) -> float:
    """The temperature minimizing the NLL of `targets` (N,) under `probabilities` (N, K) (searched on log T)."""
    y = np.asarray(targets, dtype=np.int64).reshape(-1)
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2 or len(p) != len(y) or len(y) == 0:
        raise ValueError(f"Expected probabilities of shape ({len(y)}, num_values), got {p.shape}.")
    result = minimize_scalar(
        lambda log_t: _negative_log_likelihood(y, p, math.exp(log_t)),
        bounds=(math.log(MIN_TEMPERATURE), math.log(MAX_TEMPERATURE)),
        method="bounded",
        options={"xatol": 1e-4},
    )
    return float(math.exp(result.x))


def on_bound(temperature: float) -> bool:
    """Whether a fitted temperature lies on a bound of the search interval."""
    return temperature <= MIN_TEMPERATURE * (1 + _BOUND_TOLERANCE) or temperature >= MAX_TEMPERATURE * (
        1 - _BOUND_TOLERANCE
    )


@dataclass(frozen=True)
class TemperatureFit:
    """The outcome for one head: the temperature it keeps (1.0: none) and why."""

    temperature: float  # the one calibration.json applies
    fitted: float | None  # fitted on every case; None when there were too few cases to fit
    kept: bool
    reason: str
    ece: float
    ece_calibrated: float | None  # cross-fitted; None with fewer than two folds or too few cases
    cross_fitted: np.ndarray | None  # the cross-fitted probabilities, for the reliability diagram

    def to_dict(self) -> dict:
        """The head's entry in the summary and in calibration.json."""
        return {
            "temperature": self.temperature,
            "temperature_fitted": self.fitted,
            "temperature_kept": self.kept,
            "temperature_reason": self.reason,
            "ece_calibrated": self.ece_calibrated,
        }


def fit_head_temperature(y: np.ndarray, probabilities: np.ndarray, folds: Sequence[str], name: str) -> TemperatureFit:
    """Fit and judge a temperature for one nominal head (see the module docstring); `folds[n]` is case n's fold."""
    ece = expected_calibration_error(y, probabilities, CALIBRATION_BINS)
    present = sorted(set(np.asarray(y).tolist()))
    if len(y) < MIN_CALIBRATION_CASES or len(present) < 2:
        reason = (
            f"only {len(y)} case(s) with a known value; a temperature needs at least {MIN_CALIBRATION_CASES}"
            if len(y) < MIN_CALIBRATION_CASES
            else f"only the value(s) {present} occur; a temperature needs at least two"
        )
        logger.info("Head '%s': no temperature scaling, %s.", name, reason)
        return TemperatureFit(1.0, None, False, reason, ece, None, None)
    fitted = fit_temperature(y, probabilities)
    if on_bound(fitted):
        logger.warning(
            "Head '%s': the fitted temperature %.3g lies on the bound of the search [%g, %g]: the out-of-fold "
            "predictions hardly separate the values, or there are too few cases (%d) for a reliable fit.",
            name, fitted, MIN_TEMPERATURE, MAX_TEMPERATURE, len(y),
        )
    fold_array = np.asarray(folds)
    if len(set(folds)) < 2:
        reason = "a single fold: whether it helps cannot be cross-fitted"
        logger.info("Head '%s': temperature %.3f not kept, %s.", name, fitted, reason)
        return TemperatureFit(1.0, fitted, False, reason, ece, None, None)
    scaled = np.empty_like(probabilities)
    for fold in sorted(set(folds)):
        inside = fold_array == fold
        scaled[inside] = apply_temperature(probabilities[inside], fit_temperature(y[~inside], probabilities[~inside]))
    ece_calibrated = expected_calibration_error(y, scaled, CALIBRATION_BINS)
    if ece_calibrated < ece:
        reason = f"cross-fitted ECE {ece_calibrated:.3f} is below {ece:.3f} without it"
        logger.info("Head '%s': temperature %.3f kept, %s.", name, fitted, reason)
        return TemperatureFit(fitted, fitted, True, reason, ece, ece_calibrated, scaled)
    reason = f"cross-fitted ECE {ece_calibrated:.3f} is not below {ece:.3f} without it"
    logger.info("Head '%s': temperature %.3f not kept (T = 1), %s.", name, fitted, reason)
    return TemperatureFit(1.0, fitted, False, reason, ece, ece_calibrated, scaled)


def final_checkpoint_ids(trainer_folder: Path, folds: Sequence[str]) -> dict[str, str | None]:
    """{fold: checkpoint_id of its final checkpoint}; None for a checkpoint of format 2 (it had no id) or without
    metadata (a fold that cannot predict, so a calibration is never applied to it)."""
    from universalclassifier.artifact.checkpoint import CHECKPOINT_ID, metadata_file  # loads torch

    ids: dict[str, str | None] = {}
    for fold in folds:
        checkpoint = Path(trainer_folder) / fold / ArtifactLayout.FINAL
        if not metadata_file(checkpoint).exists():
            ids[fold] = None
            continue
        metadata = read_json_file(metadata_file(checkpoint), "checkpoint metadata")
        checkpoint_id = metadata.get(CHECKPOINT_ID) if isinstance(metadata, dict) else None
        if checkpoint_id is not None and not isinstance(checkpoint_id, str):
            raise UserInputError(f"{metadata_file(checkpoint)} holds no valid {CHECKPOINT_ID}; train {fold} again.")
        ids[fold] = checkpoint_id
    return ids


def write_calibration(
    trainer_folder: Path, plans: Plans, fold_checkpoints: dict[str, str | None], heads: dict[str, dict]
) -> Path:
    """Write calibration.json: the plans hash, {fold: checkpoint_id} and per nominal head its entry (see
    `TemperatureFit.to_dict`, plus "num_cases" and "ece")."""
    path = Path(trainer_folder) / CALIBRATION_FILE
    write_json_atomic(
        path,
        {
            "method": "temperature",
            "format_version": CALIBRATION_FORMAT_VERSION,
            "plans_hash": plans.content_hash(),
            "folds": fold_checkpoints,
            "heads": heads,
        },
    )
    return path
