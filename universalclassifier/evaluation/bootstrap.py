"""Bootstrap confidence intervals with scipy.stats.bootstrap: BCa, falling back to the percentile interval.

`bootstrap_interval` is the one entry to scipy for every interval of the reports. The AUC intervals resample the
cases of each class separately (a stratified bootstrap: every resample keeps both classes, so the AUC is always
defined); the difference of two models' AUCs resamples the same cases for both (paired).
"""

from __future__ import annotations

import inspect
import logging
import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from universalclassifier.checks import checked_int

logger = logging.getLogger(__name__)

# How the reports describe these intervals.
INTERVAL_DESCRIPTION = (
    "BCa bootstrap over cases (the percentile interval where BCa is undefined; AUC intervals resample the cases of "
    "each class separately)"
)

# Resamples per vectorised batch, bounding memory on large sets.
BOOTSTRAP_BATCH = 200
# scipy >= 1.15 takes `rng`; older versions (the project allows scipy >= 1.10) only `random_state`.
_RNG_KEYWORD = "rng" if "rng" in inspect.signature(stats.bootstrap).parameters else "random_state"


def bootstrap_interval(
    samples: Sequence[np.ndarray],
    statistic: Callable[..., float | np.ndarray],
    *,
    paired: bool,
    vectorized: bool,
    num_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float | None, float | None]:
    """BCa interval of `statistic` over `samples` (resampled along axis 0), or the percentile interval of the same
    resamples where BCa is undefined (degenerate data); (None, None) where even that is NaN."""
    checked_int(num_resamples, "num_resamples", 1)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}.")
    common = {
        "paired": paired,
        "vectorized": vectorized,
        "axis": 0,
        "confidence_level": confidence,
        "batch": BOOTSTRAP_BATCH if vectorized else None,
        _RNG_KEYWORD: np.random.default_rng(seed),
    }
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        # Degenerate data (ties, constant resamples) makes BCa warn and return NaN; we fall back below instead.
        warnings.filterwarnings("ignore", category=stats.DegenerateDataWarning)
        warnings.filterwarnings("ignore", category=RuntimeWarning)
        bca = None
        try:
            bca = stats.bootstrap(tuple(samples), statistic, n_resamples=num_resamples, method="BCa", **common)
            interval = bca.confidence_interval
        except (ValueError, ZeroDivisionError, FloatingPointError) as error:
            logger.debug("BCa bootstrap failed (%s); using the percentile interval.", error)
            interval = None
        if interval is None or np.isnan(interval.low) or np.isnan(interval.high):
            # Reuse the BCa resamples where there are some (n_resamples=0 adds none), else draw them afresh.
            common[_RNG_KEYWORD] = np.random.default_rng(seed)
            interval = stats.bootstrap(
                tuple(samples),
                statistic,
                n_resamples=0 if bca is not None else num_resamples,
                method="percentile",
                bootstrap_result=bca,
                **common,
            ).confidence_interval
    low, high = float(interval.low), float(interval.high)
    return (None, None) if math.isnan(low) or math.isnan(high) else (low, high)


def _class_indices(y: np.ndarray) -> list[np.ndarray] | None:
    """The case indices of each class present in `y`: the samples a stratified bootstrap resamples separately
    (scipy resamples 1-D samples, so the statistics look the cases up by index); None if a class has one case only
    (its resamples would all be the same case: no interval)."""
    samples = [np.flatnonzero(y == k) for k in np.unique(y)]
    return None if min(len(sample) for sample in samples) < 2 else samples


def _checked(targets: ArrayLike, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(targets, dtype=np.int64).reshape(-1)
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] != len(y) or len(y) == 0:
        raise ValueError(f"Expected probabilities of shape ({len(y)}, num_values) for {len(y)} targets, got {p.shape}.")
    return y, p


def binary_problems(y: np.ndarray, p: np.ndarray, ordinal: bool) -> tuple[np.ndarray, np.ndarray]:
    """(is positive, score), each (N, J): the J defined binary problems whose mean AUC is the head's AUC.

    Binary head: value 1 against p(1); more values: each value one-vs-rest (`macro_auc`); ordinal: grade >= k
    against P(grade >= k) for k = 1..K-1 (`ordinal_auc`). Problems with one class only are left out.
    """
    k = p.shape[1]
    if ordinal:
        pairs = [(y >= g, p[:, g:].sum(axis=1)) for g in range(1, k)]
    elif k == 2:
        pairs = [(y == 1, p[:, 1])]
    else:
        pairs = [(y == v, p[:, v]) for v in range(k)]
    pairs = [(positive, score) for positive, score in pairs if positive.any() and not positive.all()]
    if not pairs:
        return np.zeros((len(y), 0), dtype=bool), np.zeros((len(y), 0))
    return np.stack([pair[0] for pair in pairs], axis=1), np.stack([pair[1] for pair in pairs], axis=1)


def mean_auc(positive: np.ndarray, score: np.ndarray) -> np.ndarray:
    """The mean over problems of the rank-based (Mann-Whitney) AUC; arrays (..., N, J), result (...)."""
    ranks = stats.rankdata(score, axis=-2)
    num_positive = positive.sum(axis=-2)
    num_negative = positive.shape[-2] - num_positive
    rank_sum = np.where(positive, ranks, 0.0).sum(axis=-2)
    with np.errstate(divide="ignore", invalid="ignore"):
        aucs = (rank_sum - num_positive * (num_positive + 1) / 2) / (num_positive * num_negative)
    return aucs.mean(axis=-1)


def _stratified_interval(
    y: np.ndarray, auc_of_cases: Callable[[np.ndarray], np.ndarray], num_resamples: int, confidence: float, seed: int
) -> tuple[float | None, float | None]:
    """BCa interval of `auc_of_cases` (resampled case indices (batch, N) -> (batch,)), resampling each class's cases
    separately; (None, None) when a class has a single case."""
    samples = _class_indices(y)
    if samples is None:
        return None, None

    def statistic(*resampled: np.ndarray, axis: int = -1) -> np.ndarray:
        cases = np.concatenate(resampled, axis=-1)
        value = auc_of_cases(cases[None] if cases.ndim == 1 else cases)
        return value if cases.ndim > 1 else value[0]

    return bootstrap_interval(
        samples,
        statistic,
        paired=False,
        vectorized=True,
        num_resamples=num_resamples,
        confidence=confidence,
        seed=seed,
    )


def bootstrap_auc_ci(
    targets: ArrayLike,
    probabilities: np.ndarray,
    num_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    ordinal: bool = False,
) -> tuple[float | None, float | None]:
    """Stratified BCa interval of the head's AUC (`macro_auc`, or `ordinal_auc` with `ordinal`): the cases of each
    class are resampled separately. (None, None) when the AUC is undefined (a single class). Deterministic per seed.
    """
    y, p = _checked(targets, probabilities)
    positive, score = binary_problems(y, p, ordinal)
    if positive.shape[1] == 0:
        return None, None
    return _stratified_interval(
        y, lambda cases: mean_auc(positive[cases], score[cases]), num_resamples, confidence, seed
    )


def bootstrap_auc_difference(
    targets: ArrayLike,
    probabilities_a: np.ndarray,
    probabilities_b: np.ndarray,
    num_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    ordinal: bool = False,
) -> tuple[float | None, float | None, float | None]:
    """AUC of a minus AUC of b (as in `bootstrap_auc_ci`) on the same cases, with a paired, stratified BCa interval:
    each resample draws the same cases for both models, so the interval reflects the difference itself rather than
    the spread of each AUC. Returns (difference, low, high); None where undefined.
    """
    y, a = _checked(targets, probabilities_a)
    b = np.asarray(probabilities_b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(
            f"Expected two probability arrays of shape ({len(y)}, num_values), got {a.shape} and {b.shape}."
        )
    (positive, score_a), (_, score_b) = binary_problems(y, a, ordinal), binary_problems(y, b, ordinal)
    if positive.shape[1] == 0:
        return None, None, None

    def difference(cases: np.ndarray) -> np.ndarray:
        return mean_auc(positive[cases], score_a[cases]) - mean_auc(positive[cases], score_b[cases])

    low, high = _stratified_interval(y, difference, num_resamples, confidence, seed)
    return float(difference(np.arange(len(y))[None])[0]), low, high
