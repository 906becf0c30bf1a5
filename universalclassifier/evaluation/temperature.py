"""Temperature scaling of nominal heads: fitted on the pooled out-of-fold predictions, applied by predict().

A head's probabilities p become softmax(log p / T): T > 1 softens over-confident predictions, T < 1 sharpens
under-confident ones, and the predicted value (the argmax) never changes, so accuracy and AUC stay as they are.
T minimizes the negative log-likelihood of the targets (Guo et al. 2017) over [MIN_TEMPERATURE, MAX_TEMPERATURE].

`uc_summarize` fits one T per nominal head and writes `calibration.json` into the trainer folder (with the plans hash,
so a model re-planned later does not use it); ordinal and regression heads are left as they are. The CV report's
"after" ECE is cross-fitted: each fold's cases are scaled with the T fitted on the other folds' cases.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import minimize_scalar

from universalclassifier.atomic import write_json_atomic
from universalclassifier.errors import UserInputError
from universalclassifier.plans import Plans

logger = logging.getLogger(__name__)

CALIBRATION_FILE = "calibration.json"
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.05, 20.0
_FLOOR = 1e-12  # probabilities are clipped here before the logarithm


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Rows of `probabilities` (N, K) or one row (K,) rescaled as softmax(log p / T)."""
    logits = np.log(np.clip(np.asarray(probabilities, dtype=np.float64), _FLOOR, 1.0)) / temperature
    logits -= logits.max(axis=-1, keepdims=True)
    scaled = np.exp(logits)
    return scaled / scaled.sum(axis=-1, keepdims=True)


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


def write_calibration(trainer_folder: Path, plans: Plans, temperatures: dict[str, dict]) -> Path:
    """Write calibration.json: per head {"temperature", "num_cases", ...}, with the plans hash."""
    path = Path(trainer_folder) / CALIBRATION_FILE
    write_json_atomic(path, {"method": "temperature", "plans_hash": plans.content_hash(), "heads": temperatures})
    return path


def read_temperatures(trainer_folder: Path, plans: Plans) -> dict[str, float]:
    """{head: T} of calibration.json for these plans; {} without the file or when it was made for other plans."""
    path = Path(trainer_folder) / CALIBRATION_FILE
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text())
        heads = raw["heads"]
        temperatures = {name: float(entry["temperature"]) for name, entry in heads.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UserInputError(
            f"{path} is damaged ({exc!r}); delete it, or run uc_summarize again to refit the calibration."
        ) from exc
    nominal = {head.name for head in plans.classification_labels if head.type == "nominal"}
    valid = all(MIN_TEMPERATURE <= t <= MAX_TEMPERATURE for t in temperatures.values())
    if not valid or not set(temperatures) <= nominal:
        raise UserInputError(
            f"{path} holds temperatures outside [{MIN_TEMPERATURE}, {MAX_TEMPERATURE}] or for heads that are not "
            "nominal heads of this model; delete it, or run uc_summarize again to refit the calibration."
        )
    if raw.get("plans_hash") != plans.content_hash():
        logger.warning("%s was fitted for other plans; predicting without calibration (run uc_summarize again).", path)
        return {}
    return temperatures
