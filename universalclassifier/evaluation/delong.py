"""DeLong's test for the difference of two correlated ROC AUCs (two models scored on the same cases).

DeLong, DeLong and Clarke-Pearson (1988), computed with placement values: for positives X and negatives Y, the
placement of a positive is the fraction of negatives it outranks (ties count half), and of a negative the fraction of
positives that outrank it. The AUC is the mean positive placement; the covariance of two models' AUCs is
S10 / m + S01 / n, with S10 (S01) the sample covariance of the positives' (negatives') placements under both models.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import norm, rankdata


def _placements(positives: np.ndarray, negatives: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(positive placements, negative placements) from midranks: O((m + n) log(m + n))."""
    m, n = len(positives), len(negatives)
    combined = rankdata(np.concatenate([positives, negatives]))
    within_positives, within_negatives = rankdata(positives), rankdata(negatives)
    positive = (combined[:m] - within_positives) / n
    negative = 1.0 - (combined[m:] - within_negatives) / m
    return positive, negative


def delong_test(targets: ArrayLike, scores_a: ArrayLike, scores_b: ArrayLike) -> dict[str, float | None]:
    """AUC of both models, their difference, its standard error and the two-sided p-value of DeLong's test.

    `targets` are 0/1; the scores are each model's score for class 1 on the same cases. The p-value is None when
    the difference has no variance (e.g. identical models); every value is None with one class only.
    """
    y = np.asarray(targets).reshape(-1).astype(bool)
    a, b = np.asarray(scores_a, dtype=np.float64).reshape(-1), np.asarray(scores_b, dtype=np.float64).reshape(-1)
    if not (len(y) == len(a) == len(b)):
        raise ValueError(f"Got {len(y)} targets but {len(a)} and {len(b)} scores; they must match.")
    empty: dict[str, float | None] = dict.fromkeys(("auc_a", "auc_b", "difference", "standard_error", "z", "p_value"))
    if y.all() or not y.any():
        return empty
    (pa, na), (pb, nb) = _placements(a[y], a[~y]), _placements(b[y], b[~y])
    s10 = np.cov(np.stack([pa, pb]))
    s01 = np.cov(np.stack([na, nb]))
    m, n = int(y.sum()), int((~y).sum())
    covariance = s10 / m + s01 / n
    variance = float(covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1])
    auc_a, auc_b = float(pa.mean()), float(pb.mean())
    result = {**empty, "auc_a": auc_a, "auc_b": auc_b, "difference": auc_a - auc_b}
    if variance > 1e-15:
        z = (auc_a - auc_b) / math.sqrt(variance)
        result.update(standard_error=math.sqrt(variance), z=z, p_value=float(2 * norm.sf(abs(z))))
    return result
