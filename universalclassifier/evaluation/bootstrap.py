"""Percentile bootstrap confidence intervals of the ROC AUC, resampling cases."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike

from universalclassifier.checks import checked_int
from universalclassifier.evaluation.metrics import macro_auc

logger = logging.getLogger(__name__)

MIN_VALID_FRACTION = 0.5


def bootstrap_auc_ci(
    targets: ArrayLike,
    probabilities: np.ndarray,
    num_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    auc: Callable[[np.ndarray, np.ndarray], float | None] = macro_auc,
) -> tuple[float | None, float | None]:
    """Percentile bootstrap interval of `auc` (default `macro_auc`): resample the cases with replacement
    `num_resamples` times.

    Resamples whose AUC is undefined (a single class drawn) are skipped; when fewer than
    MIN_VALID_FRACTION of them are left (e.g. all targets have one value) the interval is (None, None).
    The same seed gives the same interval.
    """
    y = np.asarray(targets, dtype=np.int64).reshape(-1)
    p = np.asarray(probabilities, dtype=np.float64)
    checked_int(num_resamples, "num_resamples", 1)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}.")
    if p.ndim != 2 or p.shape[0] != len(y) or len(y) == 0:
        raise ValueError(f"Expected probabilities of shape ({len(y)}, num_values) for {len(y)} targets, got {p.shape}.")
    rng = np.random.default_rng(seed)
    aucs = []
    for _ in range(num_resamples):
        picked = rng.integers(0, len(y), size=len(y))
        value = auc(y[picked], p[picked])
        if value is not None:
            aucs.append(value)
    if len(aucs) < MIN_VALID_FRACTION * num_resamples:
        logger.debug("Only %d of %d bootstrap resamples have a defined AUC; no interval.", len(aucs), num_resamples)
        return None, None
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.percentile(aucs, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_auc_difference(
    targets: ArrayLike,
    probabilities_a: np.ndarray,
    probabilities_b: np.ndarray,
    num_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    auc: Callable[[np.ndarray, np.ndarray], float | None] = macro_auc,
) -> tuple[float | None, float | None, float | None]:
    """`auc(a) - auc(b)` (default `macro_auc`) of two models on the same cases, with a paired percentile bootstrap
    interval.

    Both models are scored on the same resampled cases, so the interval reflects the difference itself rather than
    the spread of each AUC. Returns (difference, low, high); None where undefined (as in bootstrap_auc_ci).
    """
    y = np.asarray(targets, dtype=np.int64).reshape(-1)
    a, b = np.asarray(probabilities_a, dtype=np.float64), np.asarray(probabilities_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2 or a.shape[0] != len(y) or len(y) == 0:
        raise ValueError(
            f"Expected two probability arrays of shape ({len(y)}, num_values), got {a.shape} and {b.shape}."
        )
    checked_int(num_resamples, "num_resamples", 1)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}.")
    auc_a, auc_b = auc(y, a), auc(y, b)
    if auc_a is None or auc_b is None:
        return None, None, None
    rng = np.random.default_rng(seed)
    differences = []
    for _ in range(num_resamples):
        picked = rng.integers(0, len(y), size=len(y))
        resampled_a, resampled_b = auc(y[picked], a[picked]), auc(y[picked], b[picked])
        if resampled_a is not None and resampled_b is not None:
            differences.append(resampled_a - resampled_b)
    if len(differences) < MIN_VALID_FRACTION * num_resamples:
        return auc_a - auc_b, None, None
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.percentile(differences, [tail, 100 - tail])
    return auc_a - auc_b, float(low), float(high)
