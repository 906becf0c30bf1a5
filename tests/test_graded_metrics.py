"""Tests for ordinal and regression validation metrics, bootstrap intervals and the regression scatter plot."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest
from scipy import stats

from universalclassifier.evaluation.graded_metrics import (
    ordinal_metrics,
    plot_regression_scatter,
    regression_confidence_intervals,
    regression_metrics,
)
from universalclassifier.inference.outputs import median_grades

LOGGER = "universalclassifier.evaluation.graded_metrics"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
METRIC_NAMES = ["mae", "rmse", "r2", "pearson", "spearman"]

# Three grades. P(y >= 1) and P(y >= 2) per row, and the median grade (thresholds with P > 0.5):
GRADE_TARGETS = [0, 0, 1, 1, 2, 2]
GRADE_PROBS = np.array(
    [
        [0.7, 0.2, 0.1],  # 0.3, 0.1 -> 0
        [0.4, 0.4, 0.2],  # 0.6, 0.2 -> 1
        [0.2, 0.5, 0.3],  # 0.8, 0.3 -> 1
        [0.6, 0.3, 0.1],  # 0.4, 0.1 -> 0
        [0.1, 0.2, 0.7],  # 0.9, 0.7 -> 2
        [0.1, 0.6, 0.3],  # 0.9, 0.3 -> 1
    ]
)
GRADE_PREDICTED = [0, 1, 1, 0, 2, 1]


def _hand_qwk(confusion: np.ndarray) -> float:
    """Quadratic weighted kappa from its definition: 1 - sum(w * observed) / sum(w * expected)."""
    k = confusion.shape[0]
    i, j = np.indices((k, k))
    weights = (i - j) ** 2 / (k - 1) ** 2
    expected = np.outer(confusion.sum(axis=1), confusion.sum(axis=0)) / confusion.sum()
    return float(1.0 - (weights * confusion).sum() / (weights * expected).sum())


def test_median_prediction() -> None:
    assert median_grades(GRADE_PROBS).tolist() == GRADE_PREDICTED
    # Exactly 0.5 above a threshold is not past the median: P(y >= 1) = 0.75, P(y >= 2) = 0.5 -> grade 1.
    assert median_grades(np.array([[0.25, 0.25, 0.5]])).tolist() == [1]
    # The median differs from the argmax: the mode is grade 0, but P(y >= 1) = 0.6.
    assert median_grades(np.array([[0.4, 0.3, 0.3]])).tolist() == [1]


def test_ordinal_three_grades() -> None:
    m = ordinal_metrics(GRADE_TARGETS, GRADE_PROBS, 3)
    assert m["num_cases"] == 6
    # Predicted [0, 1, 1, 0, 2, 1] against [0, 0, 1, 1, 2, 2]: cases 0, 2 and 4 right, the others one grade off.
    assert m["accuracy"] == pytest.approx(0.5)
    assert m["mae_grades"] == pytest.approx(0.5)
    assert m["confusion_matrix"] == [[1, 1, 0], [1, 1, 0], [0, 1, 1]]
    assert m["balanced_accuracy"] == pytest.approx((0.5 + 0.5 + 0.5) / 3)
    # By hand: sum(w * O) = 3 * 1/4 and sum(w * E) = 7/4 with E rows (2/3, 1, 1/3), so kappa = 1 - 3/7.
    assert _hand_qwk(np.array(m["confusion_matrix"])) == pytest.approx(4 / 7)
    assert m["quadratic_weighted_kappa"] == pytest.approx(4 / 7)
    # >=1: positives score (0.8, 0.4, 0.9, 0.9) against negatives (0.3, 0.6): 7 of 8 pairs ranked right.
    # >=2: positives (0.7, 0.3) against negatives (0.1, 0.2, 0.3, 0.1): 7 pairs right and one tie, 7.5 of 8.
    assert m["auc_per_threshold"] == pytest.approx({">=1": 0.875, ">=2": 0.9375})
    assert m["auc"] == pytest.approx((0.875 + 0.9375) / 2)
    json.dumps(m)  # JSON-serialisable as returned


def test_ordinal_qwk_of_a_larger_example_matches_the_formula() -> None:
    rng = np.random.default_rng(3)
    targets = rng.integers(0, 4, size=50)
    probs = rng.dirichlet(np.ones(4), size=50)
    m = ordinal_metrics(targets, probs, 4)
    assert m["quadratic_weighted_kappa"] == pytest.approx(_hand_qwk(np.array(m["confusion_matrix"])))
    predicted = median_grades(probs)
    assert m["mae_grades"] == pytest.approx(np.abs(predicted - targets).mean())
    assert sum(map(sum, m["confusion_matrix"])) == 50


def test_ordinal_perfect_ranking_and_known_auc() -> None:
    perfect = np.array([[0.8, 0.15, 0.05], [0.2, 0.7, 0.1], [0.05, 0.25, 0.7], [0.1, 0.1, 0.8]])
    m = ordinal_metrics([0, 1, 2, 2], perfect, 3)
    assert m["auc_per_threshold"] == {">=1": 1.0, ">=2": 1.0}
    assert m["auc"] == 1.0
    assert m["accuracy"] == 1.0
    assert m["quadratic_weighted_kappa"] == pytest.approx(1.0)
    assert m["mae_grades"] == 0.0

    # Two grades, P(y >= 1) = (0.1, 0.4, 0.35, 0.8) for targets (0, 0, 1, 1): 3 of 4 pairs ranked right.
    p1 = np.array([0.1, 0.4, 0.35, 0.8])
    m = ordinal_metrics([0, 0, 1, 1], np.stack([1 - p1, p1], axis=1), 2)
    assert m["auc_per_threshold"] == pytest.approx({">=1": 0.75})
    assert m["auc"] == pytest.approx(0.75)
    assert m["confusion_matrix"] == [[2, 0], [1, 1]]


def test_ordinal_undefined_threshold_auc_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    probs = np.array([[0.6, 0.3, 0.1], [0.5, 0.2, 0.3], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4]])
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        m = ordinal_metrics([0, 0, 1, 1], probs, 3, name="head 'grade'")
    # No target reaches grade 2: ">=2" is undefined; ">=1" scores (0.8, 0.7) against (0.4, 0.5) perfectly.
    assert m["auc_per_threshold"] == {">=1": 1.0, ">=2": None}
    assert m["auc"] == 1.0
    assert "head 'grade'" in caplog.text and ">=2" in caplog.text


def test_ordinal_all_undefined() -> None:
    # All targets and predictions grade 0: no threshold AUC, and kappa is 0/0.
    probs = np.array([[0.9, 0.05, 0.05], [0.8, 0.1, 0.1]])
    m = ordinal_metrics([0, 0], probs, 3)
    assert m["auc_per_threshold"] == {">=1": None, ">=2": None}
    assert m["auc"] is None
    assert m["quadratic_weighted_kappa"] is None
    assert m["accuracy"] == 1.0
    json.dumps(m)


@pytest.mark.parametrize(
    ("targets", "probs", "num_values", "message"),
    [
        ([0, 1], np.full((2, 2), 0.5), 3, r"Expected probabilities of shape \(2, 3\)"),
        ([0, 1, 1], np.full((2, 3), 1 / 3), 3, r"Expected probabilities of shape \(3, 3\) for 3 targets"),
        ([0, 3], np.full((2, 3), 1 / 3), 3, r"Targets must lie in 0..2"),
        ([0, 1], np.array([[0.5, 0.5, 0.5], [0.2, 0.3, 0.5]]), 3, r"row 0 sums to 1.5"),
        ([0, 1], np.array([[np.nan, 0.5, 0.5], [0.2, 0.3, 0.5]]), 3, r"must be finite"),
        ([], np.zeros((0, 3)), 3, r"without cases"),
    ],
)
def test_ordinal_validation(targets: list[int], probs: np.ndarray, num_values: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ordinal_metrics(targets, probs, num_values)


def test_regression_hand_example() -> None:
    m = regression_metrics([1.0, 2.0, 3.0, 4.0], [1.5, 2.0, 2.0, 5.0])
    # Errors (0.5, 0, -1, 1): MAE 2.5/4, MSE 2.25/4; SS_tot = 5, so R² = 1 - 2.25/5.
    assert m["num_cases"] == 4
    assert m["mae"] == pytest.approx(0.625)
    assert m["rmse"] == pytest.approx(0.75)
    assert m["r2"] == pytest.approx(0.55)
    # Centred products sum to 5.25, centred squares to 5 and 7.6875.
    assert m["pearson"] == pytest.approx(5.25 / math.sqrt(5 * 7.6875))
    # Ranks (1, 2, 3, 4) against (1, 2.5, 2.5, 4): 4.5 / sqrt(5 * 4.5).
    assert m["spearman"] == pytest.approx(math.sqrt(0.9))
    json.dumps(m)


def test_regression_perfect_and_column_predictions() -> None:
    targets = [0.5, 1.5, 4.0, 2.0]
    m = regression_metrics(targets, np.array(targets)[:, None])  # an (N, 1) head output is accepted
    assert m["mae"] == 0.0 and m["rmse"] == 0.0
    assert m["r2"] == pytest.approx(1.0)
    assert m["pearson"] == pytest.approx(1.0)
    assert m["spearman"] == pytest.approx(1.0)


def test_regression_undefined_values(recwarn: pytest.WarningsRecorder) -> None:
    constant = regression_metrics([2.0, 2.0, 2.0], [1.0, 2.0, 4.0])
    assert constant["r2"] is None and constant["pearson"] is None and constant["spearman"] is None
    assert constant["mae"] == pytest.approx(1.0)
    flat_predictions = regression_metrics([1.0, 2.0, 3.0], [2.0, 2.0, 2.0])
    assert flat_predictions["pearson"] is None and flat_predictions["spearman"] is None
    assert flat_predictions["r2"] == pytest.approx(0.0)
    single = regression_metrics([3.0], [1.0])
    assert single == {"num_cases": 1, "mae": 2.0, "rmse": 2.0, "r2": None, "pearson": None, "spearman": None}
    assert not [w for w in recwarn if "onstant" in str(w.message)]


@pytest.mark.parametrize(
    ("targets", "predictions", "message"),
    [
        ([1.0, 2.0], [1.0, 2.0, 3.0], r"Got 2 regression targets but 3 predictions"),
        ([1.0, 2.0], [[1.0, 2.0], [3.0, 4.0]], r"regression predictions of shape \(N,\), got \(2, 2\)"),
        ([[1.0, 2.0]], [1.0, 2.0], r"regression targets of shape \(N,\), got \(1, 2\)"),
        ([1.0, np.inf], [1.0, 2.0], r"Regression targets must be finite"),
        ([1.0, 2.0], [np.nan, 2.0], r"Regression predictions must be finite"),
        ([], [], r"without cases"),
    ],
)
def test_regression_validation(targets: list, predictions: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        regression_metrics(targets, predictions)
    with pytest.raises(ValueError, match=message):
        regression_confidence_intervals(targets, predictions, num_resamples=10)


def _noisy_example(num_cases: int = 40) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    targets = rng.normal(50.0, 10.0, size=num_cases)
    return targets, targets + rng.normal(0.0, 5.0, size=num_cases)


def test_confidence_intervals_contain_the_estimate() -> None:
    targets, predictions = _noisy_example()
    point = regression_metrics(targets, predictions)
    intervals = regression_confidence_intervals(targets, predictions, num_resamples=500, seed=1)
    assert list(intervals) == METRIC_NAMES
    for metric in METRIC_NAMES:
        low, high = intervals[metric]
        assert low is not None and high is not None, metric
        assert low <= point[metric] <= high, metric
        assert low < high, metric
    # Same seed, same intervals; another seed, other intervals.
    assert regression_confidence_intervals(targets, predictions, num_resamples=500, seed=1) == intervals
    assert regression_confidence_intervals(targets, predictions, num_resamples=500, seed=2) != intervals
    json.dumps(intervals)


def test_confidence_intervals_are_paired_bca() -> None:
    targets, predictions = _noisy_example()
    intervals = regression_confidence_intervals(targets, predictions, num_resamples=500, seed=1)

    def mae(t: np.ndarray, p: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.mean(np.abs(t - p), axis=axis)

    def scipy_interval(method: str) -> list[float]:
        result = stats.bootstrap(
            (targets, predictions),
            mae,
            paired=True,
            vectorized=True,
            n_resamples=500,
            method=method,
            random_state=np.random.default_rng(1),
        )
        return [float(result.confidence_interval.low), float(result.confidence_interval.high)]

    bca, percentile = scipy_interval("BCa"), scipy_interval("percentile")
    assert bca != pytest.approx(percentile, abs=1e-6)
    assert intervals["mae"] == pytest.approx(bca)


def test_confidence_intervals_undefined() -> None:
    assert regression_confidence_intervals([1.0, 2.0], [1.5, 2.5]) == {m: [None, None] for m in METRIC_NAMES}
    constant = regression_confidence_intervals([3.0] * 10, np.linspace(1.0, 5.0, 10), num_resamples=200)
    assert constant["r2"] == [None, None]
    assert constant["pearson"] == [None, None] and constant["spearman"] == [None, None]
    low, high = constant["mae"]
    assert low is not None and high is not None and 0.0 < low <= high


def test_confidence_intervals_fall_back_to_percentile_on_degenerate_data() -> None:
    # Perfect predictions: every resample has MAE 0, where BCa is undefined; the percentile interval is [0, 0].
    targets = np.linspace(0.0, 9.0, 10)
    intervals = regression_confidence_intervals(targets, targets, num_resamples=200)
    assert intervals["mae"] == [0.0, 0.0]
    assert intervals["rmse"] == [0.0, 0.0]
    assert intervals["pearson"] == pytest.approx([1.0, 1.0])


def test_confidence_intervals_reject_bad_resample_count() -> None:
    with pytest.raises(ValueError, match="num_resamples must be an integer >= 1"):
        regression_confidence_intervals([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], num_resamples=0)


def test_scatter_plot(tmp_path) -> None:
    targets, predictions = _noisy_example()
    out_file = tmp_path / "plots" / "regression.png"
    plot_regression_scatter(targets, predictions, "head 'age'", out_file)
    assert out_file.read_bytes()[:8] == PNG_MAGIC
    # Constant targets (R² undefined) still plot.
    constant_file = tmp_path / "constant.png"
    plot_regression_scatter([1.0, 1.0], [0.5, 2.0], "constant", constant_file)
    assert constant_file.read_bytes()[:8] == PNG_MAGIC
