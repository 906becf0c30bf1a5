"""The metrics and plots of one head over pooled predictions: the head's metrics with bootstrap CIs, its ROC curves,
confusion matrix and reliability diagram (regression heads: a scatter plot), and for nominal heads the temperature
scaling fitted on the folds."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from universalclassifier.evaluation.bootstrap import bootstrap_auc_ci
from universalclassifier.evaluation.calibration import expected_calibration_error, plot_reliability_diagram
from universalclassifier.evaluation.graded_metrics import plot_regression_scatter, regression_confidence_intervals
from universalclassifier.evaluation.head_summary import head_summary, known_targets
from universalclassifier.evaluation.metrics import plot_confusion_matrix, plot_roc_curves
from universalclassifier.evaluation.pooling import Pooled, pooled_arrays
from universalclassifier.evaluation.temperature import CALIBRATION_BINS, fit_head_temperature
from universalclassifier.names import file_name_for
from universalclassifier.plans import ClassificationLabel

logger = logging.getLogger(__name__)


def summarize_head(
    head: ClassificationLabel,
    pooled: Pooled,
    folds: list[str],
    plots_title: str,
    folder: Path,
    num_resamples: int,
    seed: int,
    *,
    plots_folder: str,
    fit_calibration: bool = True,
) -> dict:
    """Metrics (with bootstrap CIs) and plots (in `folder`/`plots_folder`) of one head over a pooled prediction set
    {case: (fold, {head: (target, prediction)})}; nominal heads also get a temperature fit with `fit_calibration`."""
    name = head.name
    targets, predictions = pooled_arrays(pooled, name, list(pooled))
    summary = head_summary(head, targets, predictions)
    known, values = known_targets(targets)
    predictions = predictions[known]
    plot_kinds = ("scatter",) if head.is_regression else ("roc", "confusion", "reliability")
    plots = {kind: f"{plots_folder}/{kind}_{file_name_for(name)}.png" for kind in plot_kinds}
    summary.update(folds=folds, plots=plots)
    if not known.any():
        return summary
    title = f"{plots_title}: {name}"
    if head.is_regression:
        plot_regression_scatter(values, predictions[:, 0], title, folder / plots["scatter"])
        intervals = regression_confidence_intervals(values, predictions[:, 0], num_resamples=num_resamples, seed=seed)
        return {**summary, **{f"{metric}_ci_95": list(ci) for metric, ci in intervals.items()}}
    y = values.astype(np.int64)
    if head.type == "nominal" and fit_calibration:
        folds_of = [fold for (fold, _), is_known in zip(pooled.values(), known, strict=True) if is_known]
        summary.update(_calibration(name, y, predictions, folds_of, title, folder / plots["reliability"], plots_folder))
    ci = bootstrap_auc_ci(y, predictions, num_resamples=num_resamples, seed=seed, ordinal=head.ordinal)
    if summary["auc"] is not None and ci[0] is None:
        logger.warning("Head '%s': too few bootstrap resamples have a defined AUC for a confidence interval.", name)
    plot_roc_curves(y, predictions, title, folder / plots["roc"], ordinal=head.ordinal, value_names=head.values)
    plot_confusion_matrix(summary["confusion_matrix"], list(head.values), title, folder / plots["confusion"])
    plot_reliability_diagram(y, predictions, title, folder / plots["reliability"], CALIBRATION_BINS)
    return {
        **summary,
        "auc_ci_95": list(ci),
        "ece": expected_calibration_error(y, predictions, CALIBRATION_BINS),
        "values": dict(zip(map(str, range(head.num_values)), head.values, strict=True)),
    }


def _calibration(
    name: str, y: np.ndarray, probabilities: np.ndarray, folds: list[str], title: str, plot: Path, plots_folder: str
) -> dict:
    """The head's temperature scaling as `fit_head_temperature` judges it, with a reliability diagram of the
    cross-fitted probabilities where there are some."""
    fit = fit_head_temperature(y, probabilities, folds, name)
    result = fit.to_dict()
    if fit.cross_fitted is not None:
        calibrated_plot = plot.with_name(plot.name.replace("reliability_", "reliability_calibrated_"))
        plot_reliability_diagram(
            y, fit.cross_fitted, f"{title} (temperature-scaled, cross-fitted)", calibrated_plot, CALIBRATION_BINS
        )
        result["plot_calibrated"] = f"{plots_folder}/{calibrated_plot.name}"
    return result
