"""Metrics, one-line summaries and plots of a head by its type, over the cases whose target is known.

nominal: `metrics.head_metrics` (AUC, accuracy, balanced accuracy, confusion matrix) and ROC curves;
ordinal: `graded_metrics.ordinal_metrics` (AUC per threshold, macro AUC, quadratic weighted kappa, MAE in grades);
regression: `graded_metrics.regression_metrics` (MAE, RMSE, R², Pearson, Spearman) and a scatter plot.
Every summary also counts the cases without a target (`num_missing`), which no metric sees.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from universalclassifier.evaluation.graded_metrics import (
    ordinal_auc,
    ordinal_metrics,
    plot_regression_scatter,
    regression_metrics,
)
from universalclassifier.evaluation.metrics import head_metrics, macro_auc, plot_roc_curves
from universalclassifier.names import file_name_for
from universalclassifier.plans import ClassificationLabel


def known_targets(targets: Sequence[int | float | None]) -> tuple[np.ndarray, np.ndarray]:
    """(mask of the cases with a known target, those targets as float64)."""
    values = np.array([np.nan if t is None else t for t in targets], dtype=np.float64)
    known = ~np.isnan(values)
    return known, values[known]


def auc_of(label: ClassificationLabel) -> Callable[[np.ndarray, np.ndarray], float | None]:
    """The AUC a classification head is reported with: the mean threshold AUC (ordinal) or the macro AUC."""
    return ordinal_auc if label.ordinal else macro_auc


def head_summary(label: ClassificationLabel, targets: Sequence[int | float | None], predictions: np.ndarray) -> dict:
    """The metrics of one head; `predictions` (N, width) are probabilities, or one value per case (regression)."""
    known, values = known_targets(targets)
    predictions = np.asarray(predictions, dtype=np.float64)[known]
    name = f"head '{label.name}'"
    if not known.any():
        metrics: dict = {"num_cases": 0}
    elif label.is_regression:
        metrics = regression_metrics(values, predictions[:, 0])
    elif label.ordinal:
        metrics = ordinal_metrics(values.astype(np.int64), predictions, label.num_values, name=name)
    else:
        metrics = head_metrics(values.astype(np.int64), predictions, label.num_values, name=name)
    return {"type": label.type, **metrics, "num_missing": int((~known).sum())}


def summarize_heads(
    labels: Sequence[ClassificationLabel],
    targets: Mapping[str, Sequence[int | float | None]],
    predictions: Mapping[str, np.ndarray],
) -> dict:
    """{head name: head_summary} for every head, in head order."""
    return {label.name: head_summary(label, targets[label.name], predictions[label.name]) for label in labels}


def _number(value: object) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def headline(label: ClassificationLabel, metrics: Mapping) -> str:
    """A few words on a head's result for the log, e.g. "AUC 0.912, accuracy 0.850"."""
    if metrics.get("num_cases", 0) == 0:
        return "no case with a known target"
    if label.is_regression:
        return f"MAE {_number(metrics['mae'])}, R² {_number(metrics['r2'])}"
    text = f"AUC {_number(metrics['auc'])}, accuracy {_number(metrics['accuracy'])}"
    return text + (f", QWK {_number(metrics['quadratic_weighted_kappa'])}" if label.ordinal else "")


def plot_head(
    label: ClassificationLabel, targets: Sequence[int | float | None], predictions: np.ndarray, title: str, folder: Path
) -> Path | None:
    """ROC curves (`roc_<head>.png`) or a scatter plot (`scatter_<head>.png`) of the cases with a known target;
    <head> is the head name's `file_name_for`."""
    known, values = known_targets(targets)
    if not known.any():
        return None
    predictions = np.asarray(predictions, dtype=np.float64)[known]
    if label.is_regression:
        path = folder / f"scatter_{file_name_for(label.name)}.png"
        plot_regression_scatter(values, predictions[:, 0], title, path)
    else:
        path = folder / f"roc_{file_name_for(label.name)}.png"
        plot_roc_curves(
            values.astype(np.int64), predictions, title, path, ordinal=label.ordinal, value_names=label.values
        )
    return path
