"""Top-label calibration: expected calibration error (ECE) and the reliability diagram.

For N predictions with top-label confidence c_i = max_k p_ik and correctness a_i = [argmax_k p_ik == y_i],
the confidences are put into `num_bins` equal-width bins on [0, 1]: bin b holds c in [b/B, (b+1)/B), the last
bin also holds c = 1. With n_b predictions in bin b, acc_b their accuracy and conf_b their mean confidence,

    ECE = sum over non-empty bins of (n_b / N) * |acc_b - conf_b|

(Guo et al., "On Calibration of Modern Neural Networks", 2017). 0 is perfectly calibrated, 1 is the worst.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from universalclassifier.checks import checked_int
from universalclassifier.evaluation.figures import fit_title

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass(frozen=True)
class ReliabilityCurve:
    """Per-bin statistics of top-label predictions; `confidence` and `accuracy` are NaN in empty bins."""

    bin_edges: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    count: np.ndarray

    @property
    def expected_calibration_error(self) -> float:
        """Count-weighted mean |accuracy - confidence| over the non-empty bins."""
        filled = self.count > 0
        weights = self.count[filled] / self.count.sum()
        return float(np.sum(weights * np.abs(self.accuracy[filled] - self.confidence[filled])))


def reliability_curve(targets: ArrayLike, probabilities: np.ndarray, num_bins: int = 10) -> ReliabilityCurve:
    """Bin the top-label confidences of `probabilities` (shape (N, num_values)) into `num_bins` equal-width bins."""
    y = np.asarray(targets, dtype=np.int64).reshape(-1)
    p = np.asarray(probabilities, dtype=np.float64)
    checked_int(num_bins, "num_bins", 1)
    if p.ndim != 2 or p.shape[0] != len(y) or p.shape[1] < 2:
        raise ValueError(
            f"Expected probabilities of shape ({len(y)}, num_values >= 2) for {len(y)} targets, got {p.shape}."
        )
    if len(y) == 0:
        raise ValueError("Cannot compute calibration without cases.")
    confidences = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    bins = np.clip(np.floor(confidences * num_bins).astype(np.int64), 0, num_bins - 1)
    count = np.bincount(bins, minlength=num_bins)
    with np.errstate(invalid="ignore"):
        confidence = np.bincount(bins, weights=confidences, minlength=num_bins) / count
        accuracy = np.bincount(bins, weights=correct, minlength=num_bins) / count
    return ReliabilityCurve(np.linspace(0.0, 1.0, num_bins + 1), confidence, accuracy, count)


def expected_calibration_error(targets: ArrayLike, probabilities: np.ndarray, num_bins: int = 10) -> float:
    """Top-label ECE of `probabilities` (shape (N, num_values)) against `targets`; see the module docstring."""
    return reliability_curve(targets, probabilities, num_bins).expected_calibration_error


def plot_reliability_diagram(
    targets: ArrayLike, probabilities: np.ndarray, title: str, out_file: Path, num_bins: int = 10
) -> Figure:
    """Write a PNG: accuracy per confidence bin against the diagonal, above a histogram of the confidences; returns
    the figure. A long title is wrapped to the figure's width."""
    from matplotlib.figure import Figure

    curve = reliability_curve(targets, probabilities, num_bins)
    centers = (curve.bin_edges[:-1] + curve.bin_edges[1:]) / 2
    width = 1.0 / num_bins
    filled = curve.count > 0

    figure = Figure(figsize=(5, 6), dpi=100, layout="constrained")
    accuracy_axes, count_axes = figure.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    accuracy_axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    accuracy_axes.bar(
        centers[filled], curve.accuracy[filled], width=width, edgecolor="black", alpha=0.7, label="accuracy"
    )
    accuracy_axes.plot(curve.confidence[filled], curve.accuracy[filled], "o", color="tab:red", label="mean confidence")
    accuracy_axes.set_xlim(0.0, 1.0)
    accuracy_axes.set_ylim(0.0, 1.0)
    accuracy_axes.set_ylabel("Accuracy")
    accuracy_axes.set_title(fit_title(f"{title}\nECE = {curve.expected_calibration_error:.3f}", 5))
    accuracy_axes.legend(loc="upper left")
    count_axes.bar(centers, curve.count, width=width, edgecolor="black", color="tab:grey")
    count_axes.set_xlabel("Confidence (top-label probability)")
    count_axes.set_ylabel("Cases")
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_file, format="png")
    return figure
