"""Validation metrics per classification head: accuracy, balanced accuracy, confusion matrix, ROC AUC; ROC and
confusion-matrix plots."""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, roc_auc_score, roc_curve

from universalclassifier.evaluation.figures import fit_title

if TYPE_CHECKING:
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)


def _check(targets: ArrayLike, probabilities: np.ndarray, num_values: int) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(targets, dtype=np.int64).reshape(-1)
    p = np.asarray(probabilities, dtype=np.float64)
    if num_values < 2:
        raise ValueError(f"A classification head needs at least 2 values, got num_values={num_values}.")
    if p.ndim != 2 or p.shape != (len(y), num_values):
        raise ValueError(
            f"Expected probabilities of shape ({len(y)}, {num_values}) for {len(y)} targets, got {p.shape}."
        )
    if len(y) == 0:
        raise ValueError("Cannot compute metrics without cases.")
    if y.min() < 0 or y.max() >= num_values:
        raise ValueError(f"Targets must lie in 0..{num_values - 1}, got values {sorted(set(y.tolist()))}.")
    return y, p


def _one_vs_rest_auc(is_positive: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC AUC, or None when only one class is present."""
    if is_positive.all() or not is_positive.any():
        return None
    return float(roc_auc_score(is_positive, scores))


def _json_safe_dict(mapping: Mapping) -> dict[str, object]:
    """A dict with string keys and JSON-safe values (see `_json_safe`)."""
    return {str(k): _json_safe(v) for k, v in mapping.items()}


def _json_safe(value: object) -> object:
    """Convert numpy scalars/arrays to plain Python and NaN to None, recursively."""
    if isinstance(value, dict):
        return _json_safe_dict(value)
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    return value


def macro_auc(targets: ArrayLike, probabilities: np.ndarray) -> float | None:
    """AUC of value 1 for a binary head, the mean defined one-vs-rest AUC otherwise; None if undefined (no logging)."""
    y = np.asarray(targets, dtype=np.int64).reshape(-1)
    p = np.asarray(probabilities, dtype=np.float64)
    if p.shape[1] == 2:
        return _one_vs_rest_auc(y == 1, p[:, 1])
    defined = [a for v in range(p.shape[1]) if (a := _one_vs_rest_auc(y == v, p[:, v])) is not None]
    return float(np.mean(defined)) if defined else None


def head_metrics(targets: ArrayLike, probabilities: np.ndarray, num_values: int, *, name: str = "head") -> dict:
    """Metrics of one head; `probabilities` has shape (N, num_values), the prediction is its argmax.

    Returns a JSON-serialisable dict with num_cases, accuracy, balanced_accuracy, confusion_matrix
    (rows = true value, columns = predicted value) and auc; heads with more than two values also get
    auc_per_value (one-vs-rest) and auc is their macro mean over the values where it is defined.
    An undefined AUC (a single class in the targets) is None and logged as a warning; `name` labels that warning.
    """
    y, p = _check(targets, probabilities, num_values)
    predicted = p.argmax(axis=1)
    with warnings.catch_warnings():
        # Values missing from the targets are expected on small validation folds; sklearn skips them correctly.
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        warnings.filterwarnings("ignore", message="A single label was found in 'y_true' and 'y_pred'")
        balanced = balanced_accuracy_score(y, predicted)
    result: dict = {
        "num_cases": len(y),
        "accuracy": float((predicted == y).mean()),
        "balanced_accuracy": balanced,
        "confusion_matrix": confusion_matrix(y, predicted, labels=list(range(num_values))),
    }
    if num_values == 2:
        result["auc"] = _one_vs_rest_auc(y == 1, p[:, 1])
        if result["auc"] is None:
            logger.warning("AUC of %s is undefined: all %d targets have value %d.", name, len(y), y[0])
    else:
        per_value = {str(v): _one_vs_rest_auc(y == v, p[:, v]) for v in range(num_values)}
        undefined = [v for v, auc in per_value.items() if auc is None]
        if undefined:
            logger.warning(
                "One-vs-rest AUC of %s is undefined for value(s) %s: the targets (values %s) hold only one class "
                "for them; the macro AUC averages the others.",
                name,
                undefined,
                sorted(set(y.tolist())),
            )
        defined = [auc for auc in per_value.values() if auc is not None]
        result["auc_per_value"] = per_value
        result["auc"] = float(np.mean(defined)) if defined else None
    return _json_safe_dict(result)


def roc_problems(
    targets: ArrayLike, probabilities: np.ndarray, ordinal: bool = False, value_names: Sequence[str] | None = None
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """The binary problems a head's AUC is made of, as (legend label, is positive, score): value 1 of a binary head;
    each value against the rest for a nominal head with more values (the macro AUC); for an ordinal head each
    threshold "grade >= k vs < k" scored by P(grade >= k) (the mean threshold AUC)."""
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"Expected probabilities of shape (N, num_values), got {p.shape}.")
    y, p = _check(targets, p, p.shape[1])
    names = [str(v) for v in range(p.shape[1])] if value_names is None else list(value_names)
    if ordinal:
        exceedance = np.cumsum(p[:, ::-1], axis=1)[:, ::-1]
        return [(f">= {names[k]} vs < {names[k]}", y >= k, exceedance[:, k]) for k in range(1, p.shape[1])]
    if p.shape[1] == 2:
        return [(f"{names[1]} vs {names[0]}", y == 1, p[:, 1])]
    return [(f"{names[v]} vs rest", y == v, p[:, v]) for v in range(p.shape[1])]


def plot_roc_curves(
    targets: ArrayLike,
    probabilities: np.ndarray,
    title: str,
    out_file: Path,
    *,
    ordinal: bool = False,
    value_names: Sequence[str] | None = None,
) -> Figure:
    """Write a PNG with the ROC curves of the problems the head's AUC averages (see `roc_problems`: one curve for a
    binary head, one-vs-rest curves for a nominal head with more values, threshold curves "grade >= k vs < k" for an
    ordinal head) and a chance line; returns the figure.

    Curves whose AUC is undefined (only one class present) are left out with a warning.
    """
    from matplotlib.figure import Figure

    problems = roc_problems(targets, probabilities, ordinal, value_names)
    figure = Figure(figsize=(5, 5), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    for label, is_positive, score in problems:
        auc = _one_vs_rest_auc(is_positive, score)
        if auc is None:
            logger.warning("%s: no ROC curve for %s, its AUC is undefined (one class only).", title, label)
            continue
        fpr, tpr, _ = roc_curve(is_positive, score)
        axes.plot(fpr, tpr, label=f"{label}, AUC = {auc:.3f}")
    axes.set_xlim(0.0, 1.0)
    axes.set_ylim(0.0, 1.0)
    axes.set_xlabel("False positive rate")
    axes.set_ylabel("True positive rate")
    kind = "threshold ROC curves" if ordinal else "one-vs-rest ROC curves" if len(problems) > 1 else "ROC curve"
    axes.set_title(fit_title(f"{title}\n{kind}", 5))
    axes.legend(loc="lower right")
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_file, format="png")
    return figure


def plot_confusion_matrix(
    matrix: Sequence[Sequence[int]], value_names: Sequence[str], title: str, out_file: Path
) -> None:
    """Write a PNG of a confusion matrix (rows = true value, columns = predicted value) with the count in every cell."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    counts = np.asarray(matrix, dtype=np.int64)
    size = max(4.0, 1.0 + 0.9 * len(value_names))
    figure = Figure(figsize=(size + 1, size), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    image = axes.imshow(counts, cmap="Blues", vmin=0, aspect="auto")
    figure.colorbar(image, ax=axes, label="Cases", ticks=MaxNLocator(integer=True))
    threshold = counts.max() / 2
    for (row, column), count in np.ndenumerate(counts):
        color = "white" if count > threshold else "black"
        axes.text(column, row, str(count), ha="center", va="center", color=color)
    ticks = range(len(value_names))
    axes.set_xticks(ticks, labels=value_names, rotation=45 if len(value_names) > 3 else 0)
    axes.set_yticks(ticks, labels=value_names)
    axes.set_xlabel("Predicted value")
    axes.set_ylabel("True value")
    axes.set_title(fit_title(title, size + 1))
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_file, format="png")
