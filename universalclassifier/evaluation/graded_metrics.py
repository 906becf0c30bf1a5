"""Validation metrics of ordinal heads (grades 0..K-1) and regression heads, bootstrap intervals and scatter plots."""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats
from sklearn.metrics import balanced_accuracy_score, cohen_kappa_score, confusion_matrix, r2_score

from universalclassifier.checks import checked_int
from universalclassifier.evaluation.bootstrap import bootstrap_interval
from universalclassifier.evaluation.figures import fit_title
from universalclassifier.evaluation.metrics import _check, _json_safe_dict, _one_vs_rest_auc
from universalclassifier.inference.outputs import median_grades

logger = logging.getLogger(__name__)

# Tolerance on the row sums of ordinal probabilities (float32 softmax outputs are a few ulp off).
ROW_SUM_TOLERANCE = 1e-3
# Fewer cases than this give no bootstrap interval: the jackknife of BCa and most resamples degenerate.
MIN_BOOTSTRAP_CASES = 3


def _exceedance(probabilities: np.ndarray) -> np.ndarray:
    """P(y >= k) for k = 0..K-1 per row: the reversed cumulative sum of the class probabilities."""
    return np.cumsum(probabilities[:, ::-1], axis=1)[:, ::-1]


def _threshold_aucs(y: np.ndarray, probabilities: np.ndarray) -> dict[str, float | None]:
    """{">=k": ROC AUC of P(y >= k) for the binary target y >= k} for k = 1..K-1 (None where one class only)."""
    exceedance = _exceedance(probabilities)
    return {f">={k}": _one_vs_rest_auc(y >= k, exceedance[:, k]) for k in range(1, probabilities.shape[1])}


def ordinal_auc(targets: ArrayLike, probabilities: np.ndarray) -> float | None:
    """The mean of the defined threshold AUCs (see `ordinal_metrics`), None if none is defined; no logging."""
    aucs = _threshold_aucs(np.asarray(targets).reshape(-1), probabilities)
    defined = [auc for auc in aucs.values() if auc is not None]
    return float(np.mean(defined)) if defined else None


def ordinal_metrics(targets: ArrayLike, probabilities: np.ndarray, num_values: int, *, name: str = "head") -> dict:
    """Metrics of one ordinal head; `probabilities` (N, num_values) are grade probabilities, rows summing to 1.

    The predicted grade is the median of each row's distribution (`inference.outputs.median_grades`). Returns a
    JSON-serialisable dict with num_cases, accuracy, balanced_accuracy, confusion_matrix (rows = true grade,
    columns = predicted grade), auc_per_threshold ({">=k": ROC AUC of P(y >= k) for the target y >= k}),
    auc (the mean of the defined threshold AUCs), quadratic_weighted_kappa and mae_grades (mean absolute grade error).
    Undefined values (a threshold with one class only, a kappa without spread) are None; undefined threshold AUCs
    are logged as a warning labelled with `name`.
    """
    y, p = _check(targets, probabilities, num_values)
    if not np.isfinite(p).all():
        raise ValueError("Probabilities must be finite.")
    row_sums = p.sum(axis=1)
    if not np.allclose(row_sums, 1.0, rtol=0.0, atol=ROW_SUM_TOLERANCE):
        worst = int(np.abs(row_sums - 1.0).argmax())
        raise ValueError(f"Probability rows must sum to 1, row {worst} sums to {row_sums[worst]:.6g}.")
    predicted = median_grades(p)
    labels = list(range(num_values))
    with warnings.catch_warnings():
        # Grades missing from the targets are expected on small validation folds (see metrics.head_metrics).
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        warnings.filterwarnings("ignore", message="A single label was found in 'y_true' and 'y_pred'")
        balanced = balanced_accuracy_score(y, predicted)
        # Undefined when targets and predictions share a single grade: NaN, reported as None.
        warnings.filterwarnings("ignore", message=".*cohen_kappa_score` is undefined")
        warnings.filterwarnings("ignore", category=RuntimeWarning)
        kappa = cohen_kappa_score(y, predicted, weights="quadratic", labels=labels)
    per_threshold = _threshold_aucs(y, p)
    undefined = [k for k, auc in per_threshold.items() if auc is None]
    if undefined:
        logger.warning(
            "Threshold AUC of %s is undefined for %s: the targets (grades %s) hold only one class there; "
            "the mean AUC averages the others.",
            name,
            undefined,
            sorted(set(y.tolist())),
        )
    defined = [auc for auc in per_threshold.values() if auc is not None]
    result: dict = {
        "num_cases": len(y),
        "accuracy": float((predicted == y).mean()),
        "balanced_accuracy": balanced,
        "confusion_matrix": confusion_matrix(y, predicted, labels=labels),
        "auc_per_threshold": per_threshold,
        "auc": float(np.mean(defined)) if defined else None,
        "quadratic_weighted_kappa": kappa,
        "mae_grades": float(np.abs(predicted - y).mean()),
    }
    return _json_safe_dict(result)


def _check_regression(targets: ArrayLike, predictions: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Targets and predictions as float64 vectors of equal length; (N, 1) columns are flattened."""
    checked = []
    for label, values in (("targets", targets), ("predictions", predictions)):
        array = np.asarray(values, dtype=np.float64)
        if array.ndim == 2 and array.shape[1] == 1:
            array = array[:, 0]
        if array.ndim != 1:
            raise ValueError(f"Expected regression {label} of shape (N,), got {array.shape}.")
        if not np.isfinite(array).all():
            raise ValueError(f"Regression {label} must be finite, got {int((~np.isfinite(array)).sum())} non-finite.")
        checked.append(array)
    y, pred = checked
    if len(y) != len(pred):
        raise ValueError(f"Got {len(y)} regression targets but {len(pred)} predictions.")
    if len(y) == 0:
        raise ValueError("Cannot compute metrics without cases.")
    return y, pred


def _correlation(kind: str, y: np.ndarray, pred: np.ndarray) -> float | None:
    """Pearson or Spearman correlation; None with fewer than 2 cases or a constant input."""
    if len(y) < 2 or np.ptp(y) == 0 or np.ptp(pred) == 0:
        return None
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=stats.ConstantInputWarning)
        result = stats.pearsonr(y, pred) if kind == "pearson" else stats.spearmanr(y, pred)
    value = float(result.statistic)
    return None if math.isnan(value) else value


def regression_metrics(targets: ArrayLike, predictions: ArrayLike) -> dict:
    """Metrics of one regression head: num_cases, mae, rmse, r2, pearson and spearman (JSON-serialisable).

    r2 is None with fewer than 2 cases or constant targets (sklearn would report a made-up 0 or 1);
    pearson and spearman are None where undefined (fewer than 2 cases, constant targets or predictions).
    """
    y, pred = _check_regression(targets, predictions)
    error = pred - y
    defined_r2 = len(y) >= 2 and np.ptp(y) > 0
    result: dict = {
        "num_cases": len(y),
        "mae": float(np.abs(error).mean()),
        "rmse": float(np.sqrt(np.mean(error**2))),
        "r2": float(r2_score(y, pred)) if defined_r2 else None,
        "pearson": _correlation("pearson", y, pred),
        "spearman": _correlation("spearman", y, pred),
    }
    return _json_safe_dict(result)


# Vectorised statistics for scipy.stats.bootstrap: cases along `axis`, NaN where undefined.


def _mae(y: np.ndarray, pred: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(np.abs(pred - y), axis=axis)


def _rmse(y: np.ndarray, pred: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.sqrt(np.mean((pred - y) ** 2, axis=axis))


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, NaN where the denominator is 0."""
    positive = denominator > 0
    return np.where(positive, numerator / np.where(positive, denominator, 1.0), np.nan)


def _r2(y: np.ndarray, pred: np.ndarray, axis: int = -1) -> np.ndarray:
    residual = np.sum((y - pred) ** 2, axis=axis)
    total = np.sum((y - np.mean(y, axis=axis, keepdims=True)) ** 2, axis=axis)
    return 1.0 - _ratio(residual, total)


def _pearson(y: np.ndarray, pred: np.ndarray, axis: int = -1) -> np.ndarray:
    dy = y - np.mean(y, axis=axis, keepdims=True)
    dp = pred - np.mean(pred, axis=axis, keepdims=True)
    return _ratio(np.sum(dy * dp, axis=axis), np.sqrt(np.sum(dy**2, axis=axis) * np.sum(dp**2, axis=axis)))


def _spearman(y: np.ndarray, pred: np.ndarray, axis: int = -1) -> np.ndarray:
    return _pearson(stats.rankdata(y, axis=axis), stats.rankdata(pred, axis=axis), axis=axis)


_BOOTSTRAP_STATISTICS: dict[str, Callable[..., np.ndarray]] = {
    "mae": _mae,
    "rmse": _rmse,
    "r2": _r2,
    "pearson": _pearson,
    "spearman": _spearman,
}


def regression_confidence_intervals(
    targets: ArrayLike, predictions: ArrayLike, num_resamples: int = 1000, seed: int = 0
) -> dict[str, list[float | None]]:
    """95% bootstrap intervals {metric: [low, high]} of mae, rmse, r2, pearson and spearman, resampling cases.

    Targets and predictions are resampled together (paired). The interval is BCa, or the percentile interval of
    the same resamples where BCa is undefined (e.g. all resamples give the same value). It is [None, None] with
    fewer than MIN_BOOTSTRAP_CASES cases, where the metric itself is undefined (e.g. r2 of constant targets), or
    where some resamples leave it undefined (e.g. a resample of identical cases for r2 on a handful of cases).
    The same seed gives the same intervals.
    """
    y, pred = _check_regression(targets, predictions)
    checked_int(num_resamples, "num_resamples", 1)
    point = regression_metrics(y, pred)
    intervals: dict[str, list[float | None]] = {}
    for metric, statistic in _BOOTSTRAP_STATISTICS.items():
        if len(y) < MIN_BOOTSTRAP_CASES or point[metric] is None:
            intervals[metric] = [None, None]
        else:
            low, high = bootstrap_interval(
                (y, pred), statistic, paired=True, vectorized=True, num_resamples=num_resamples, seed=seed
            )
            intervals[metric] = [low, high]
    return intervals


def bootstrap_mae_difference(
    targets: ArrayLike, predictions_a: ArrayLike, predictions_b: ArrayLike, num_resamples: int = 1000, seed: int = 0
) -> tuple[float, float | None, float | None]:
    """MAE of a minus MAE of b on the same cases, with a paired bootstrap interval (each resample draws the same
    cases for both models; BCa, else percentile). Returns (difference, low, high); the interval is (None, None)
    with fewer than MIN_BOOTSTRAP_CASES cases."""
    y, a = _check_regression(targets, predictions_a)
    _, b = _check_regression(y, predictions_b)
    checked_int(num_resamples, "num_resamples", 1)

    def difference(y: np.ndarray, a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
        return _mae(y, a, axis) - _mae(y, b, axis)

    point = float(difference(y, a, b))
    if len(y) < MIN_BOOTSTRAP_CASES:
        return point, None, None
    low, high = bootstrap_interval(
        (y, a, b), difference, paired=True, vectorized=True, num_resamples=num_resamples, seed=seed
    )
    return point, low, high


def plot_regression_scatter(targets: ArrayLike, predictions: ArrayLike, title: str, out_file: Path) -> None:
    """Write a PNG scatter plot of predicted against true values with the identity line; MAE and R² in the legend."""
    from matplotlib.figure import Figure

    y, pred = _check_regression(targets, predictions)
    metrics = regression_metrics(y, pred)
    r2 = metrics["r2"]
    r2_text = "n/a" if r2 is None else f"{r2:.3f}"

    figure = Figure(figsize=(5, 5), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    low, high = float(min(y.min(), pred.min())), float(max(y.max(), pred.max()))
    margin = 0.05 * (high - low) if high > low else 1.0
    low, high = low - margin, high + margin
    axes.plot([low, high], [low, high], linestyle="--", color="grey", label="identity")
    axes.scatter(y, pred, s=16, alpha=0.7, label=f"MAE = {metrics['mae']:.3g}, R² = {r2_text}")
    axes.set_xlim(low, high)
    axes.set_ylim(low, high)
    axes.set_xlabel("true value")
    axes.set_ylabel("predicted value")
    axes.set_title(fit_title(title, 5))
    axes.legend(loc="upper left")
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_file, format="png")
