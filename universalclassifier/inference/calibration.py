"""Applying the temperature calibration that uc_summarize fitted: reading calibration.json and scaling probabilities.

A nominal head's probabilities p become softmax(log p / T): T > 1 softens over-confident predictions, T < 1 sharpens
under-confident ones, and the predicted value (the argmax) never changes. The fit lives in evaluation/temperature.py.

calibration.json (in the trainer folder) holds the plans hash, the folds it was fitted on with the `checkpoint_id` of
each fold's final checkpoint, and per nominal head the temperature uc_summarize kept (1.0 where it kept none). It
applies to an ensemble only when the plans are the same and every fold of the ensemble is among its folds with the
same checkpoint id; after a fold is retrained, or with a fold it was not fitted on, it is stale: prediction goes on
without it, with a warning to run uc_summarize again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from universalclassifier.errors import UserInputError
from universalclassifier.json_files import read_json_file
from universalclassifier.plans import ClassificationLabel, Plans

logger = logging.getLogger(__name__)

CALIBRATION_FILE = "calibration.json"
CALIBRATION_FORMAT_VERSION = 2  # 2: tied to the folds' checkpoint ids; 1 (no "format_version") was not
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.05, 20.0
MAX_CALIBRATION_BYTES = 1024 * 1024  # a few hundred bytes per head
_FLOOR = 1e-12  # probabilities are clipped here before the logarithm
_RERUN = "run uc_summarize again to refit it"


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Rows of `probabilities` (N, K) or one row (K,) rescaled as softmax(log p / T)."""
    logits = np.log(np.clip(np.asarray(probabilities, dtype=np.float64), _FLOOR, 1.0)) / temperature
    logits -= logits.max(axis=-1, keepdims=True)
    scaled = np.exp(logits)
    return scaled / scaled.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class Calibration:
    """A calibration.json that holds for these plans: the temperatures it applies and the folds it was fitted on."""

    path: Path
    temperatures: dict[str, float]  # heads with a kept temperature (T != 1)
    fold_checkpoints: dict[str, str | None]  # fold folder name -> checkpoint_id of its final checkpoint
    identity: str  # SHA-256 of the file's canonical content: which calibration a prediction used

    def apply(self, labels: Sequence[ClassificationLabel], per_head: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Per head the prediction, temperature-scaled where this calibration keeps a temperature for the head."""
        return [
            apply_temperature(p, self.temperatures[label.name]) if label.name in self.temperatures else p
            for label, p in zip(labels, per_head, strict=True)
        ]

    def describe(self) -> str:
        """E.g. "lesion_contrast T = 1.640", or "no head" when every head kept T = 1."""
        return ", ".join(f"{name} T = {t:.3f}" for name, t in self.temperatures.items()) or "no head"

    def stale_folds(self, fold_checkpoints: Mapping[str, str | None]) -> list[str]:
        """The folds of an ensemble this calibration was not fitted on, or fitted on another checkpoint of."""
        return sorted(
            fold
            for fold, checkpoint_id in fold_checkpoints.items()
            if fold not in self.fold_checkpoints or self.fold_checkpoints[fold] != checkpoint_id
        )


def _damaged(path: Path, what: str) -> UserInputError:
    return UserInputError(f"The calibration {path} {what}; delete it, or {_RERUN}.")


def _temperature(path: Path, name: object, entry: object) -> float:
    value = entry.get("temperature") if isinstance(entry, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _damaged(path, f"has no numeric temperature for head {name!r}")
    if not MIN_TEMPERATURE <= value <= MAX_TEMPERATURE:
        raise _damaged(path, f"holds the temperature {value!r} for head {name!r}, outside [{MIN_TEMPERATURE}, "
                       f"{MAX_TEMPERATURE}]")
    return float(value)


def read_calibration(trainer_folder: Path, plans: Plans) -> Calibration | None:
    """The trainer folder's calibration.json for these plans; None without the file, or (with a warning) when it was
    fitted for other plans or by a version that did not tie it to the folds' checkpoints.

    Raises UserInputError naming the file when it is damaged: not bounded, regular JSON, temperatures that are not
    numbers in [MIN_TEMPERATURE, MAX_TEMPERATURE], heads that are not nominal heads of the plans.
    """
    path = Path(trainer_folder) / CALIBRATION_FILE
    if not path.exists() and not path.is_symlink():
        return None
    raw = read_json_file(path, "calibration", MAX_CALIBRATION_BYTES)
    if not isinstance(raw, dict) or not isinstance(raw.get("heads"), dict):
        raise _damaged(path, "must be an object with 'heads'")
    nominal = {head.name for head in plans.classification_labels if head.type == "nominal"}
    foreign = sorted(str(name) for name in raw["heads"] if name not in nominal)
    if foreign:
        raise _damaged(path, f"holds temperatures for {foreign}, which are not nominal heads of this model")
    temperatures = {name: _temperature(path, name, entry) for name, entry in raw["heads"].items()}
    if raw.get("plans_hash") != plans.content_hash():
        logger.warning("%s was fitted for other plans; predicting without calibration (%s).", path, _RERUN)
        return None
    folds = raw.get("folds")
    if raw.get("format_version") != CALIBRATION_FORMAT_VERSION or not isinstance(folds, dict):
        logger.warning(
            "%s was written by an older version that did not record which fold checkpoints it was fitted on; "
            "predicting without calibration (%s).", path, _RERUN,
        )
        return None
    if not all(isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in folds.items()):
        raise _damaged(path, "must map fold names to checkpoint ids in 'folds'")
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"))
    return Calibration(
        path,
        {name: t for name, t in temperatures.items() if t != 1.0},
        dict(folds),
        hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
    )


def calibration_for_ensemble(
    trainer_folder: Path, plans: Plans, fold_checkpoints: Mapping[str, str | None]
) -> Calibration | None:
    """The calibration that holds for an ensemble of these folds ({fold folder name: checkpoint_id}), or None: no
    calibration.json, one for other plans, or a stale one (a fold retrained since, or not among its folds), which is
    left out with a warning naming the folds."""
    calibration = read_calibration(trainer_folder, plans)
    if calibration is None:
        return None
    stale = calibration.stale_folds(fold_checkpoints)
    if stale:
        logger.warning(
            "%s was fitted on %s, but %s of this ensemble %s been retrained since or %s not among them; predicting "
            "without calibration (%s).",
            calibration.path, ", ".join(sorted(calibration.fold_checkpoints)) or "no fold", ", ".join(stale),
            "has" if len(stale) == 1 else "have", "is" if len(stale) == 1 else "are", _RERUN,
        )
        return None
    return calibration
