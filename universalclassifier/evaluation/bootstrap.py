"""Percentile bootstrap confidence intervals of the ROC AUC, resampling cases."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from universalclassifier.training.metrics import macro_auc

logger = logging.getLogger(__name__)

MIN_VALID_FRACTION = 0.5


def bootstrap_auc_ci(
    targets: Sequence[int],
    probabilities: np.ndarray,
    num_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float | None, float | None]:
    """Percentile bootstrap interval of `macro_auc`: resample the cases with replacement `num_resamples` times.

    Resamples whose AUC is undefined (a single class drawn) are skipped; when fewer than
    MIN_VALID_FRACTION of them are left (e.g. all targets have one value) the interval is (None, None).
    The same seed gives the same interval.
    """
    y = np.asarray(targets, dtype=np.int64).reshape(-1)
    p = np.asarray(probabilities, dtype=np.float64)
    if num_resamples < 1:
        raise ValueError(f"num_resamples must be at least 1, got {num_resamples}.")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}.")
    if p.ndim != 2 or p.shape[0] != len(y) or len(y) == 0:
        raise ValueError(f"Expected probabilities of shape ({len(y)}, num_values) for {len(y)} targets, got {p.shape}.")
    rng = np.random.default_rng(seed)
    aucs = []
    for _ in range(num_resamples):
        picked = rng.integers(0, len(y), size=len(y))
        auc = macro_auc(y[picked], p[picked])
        if auc is not None:
            aucs.append(auc)
    if len(aucs) < MIN_VALID_FRACTION * num_resamples:
        logger.debug("Only %d of %d bootstrap resamples have a defined AUC; no interval.", len(aucs), num_resamples)
        return None, None
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.percentile(aucs, [tail, 100 - tail])
    return float(low), float(high)
