"""What a prediction says about each head, in one vocabulary for predict(), case JSON files and CSV columns.

Per head `H`:
- classification heads: `probabilities` (one per value; CSV columns `H_p0` ... `H_p{K-1}`), `prediction` (the
  predicted value, an integer key of the head's `values`; column `H_prediction`) and `prediction_name` (that value's
  name in dataset.json; column `H_prediction_name`);
- regression heads: `prediction` (the value in the target's units; column `H_prediction`).

The predicted value of a nominal head is its most probable value. The predicted grade of an ordinal head is the
median of its grade distribution: the number of thresholds k = 1..K-1 with P(grade >= k) > 0.5. It can differ from
the most probable grade (probabilities 0.4, 0.3, 0.3 give grade 1, since P(grade >= 1) = 0.6), and it is what the
quadratic weighted kappa, accuracy and confusion matrix of ordinal heads are computed from.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from universalclassifier.plans import ClassificationLabel

ContractValue = float | list[float]


def median_grades(probabilities: np.ndarray) -> np.ndarray:
    """Median grade of each row of grade probabilities (N, K): the number of k in 1..K-1 with P(y >= k) > 0.5."""
    exceedance = np.cumsum(np.asarray(probabilities, dtype=np.float64)[:, ::-1], axis=1)[:, ::-1]
    return (exceedance[:, 1:] > 0.5).sum(axis=1)


def predicted_values(label: ClassificationLabel, probabilities: np.ndarray) -> np.ndarray:
    """The predicted value (an integer) of a classification head for each row of `probabilities` (N, K)."""
    if label.is_regression:
        raise ValueError(f"Head '{label.name}' is a regression head: its prediction is the value itself.")
    p = np.asarray(probabilities, dtype=np.float64)
    return median_grades(p) if label.ordinal else p.argmax(axis=1)


def contract_value(prediction: np.ndarray) -> ContractValue:
    """One head's prediction in the predict() contract: p(1) of a binary head, the value of a regression head (both
    a float), else the list of probabilities."""
    return float(prediction[-1]) if len(prediction) <= 2 else [float(v) for v in prediction]


def head_result(label: ClassificationLabel, prediction: np.ndarray) -> dict:
    """One head's prediction with the predicted value named: {"probabilities", "prediction", "prediction_name"},
    or {"prediction"} for a regression head."""
    if label.is_regression:
        return {"prediction": float(prediction[0])}
    value = int(predicted_values(label, np.asarray(prediction)[None])[0])
    return {
        "probabilities": [float(p) for p in prediction],
        "prediction": value,
        "prediction_name": label.values[value],
    }


def prediction_columns(label: ClassificationLabel) -> list[str]:
    """The CSV columns of a head's prediction (see the module docstring)."""
    name = label.name
    if label.is_regression:
        return [f"{name}_prediction"]
    return [f"{name}_p{v}" for v in range(label.num_values)] + [f"{name}_prediction", f"{name}_prediction_name"]


def prediction_cells(label: ClassificationLabel, result: dict) -> list[str]:
    """The CSV cells of one head's `head_result`, in the order of `prediction_columns`."""
    if label.is_regression:
        return [f"{result['prediction']:.6f}"]
    return [f"{p:.6f}" for p in result["probabilities"]] + [str(result["prediction"]), result["prediction_name"]]


def check_head_result(label: ClassificationLabel, result: object) -> bool:
    """Whether `result` is a well-formed `head_result` of this head (as read back from a case JSON file)."""
    if not isinstance(result, dict) or not _is_number(result.get("prediction")):
        return False
    if label.is_regression:
        return True
    probabilities, value = result.get("probabilities"), result["prediction"]
    return (
        isinstance(probabilities, list)
        and len(probabilities) == label.num_values
        and all(_is_number(p) for p in probabilities)
        and isinstance(value, int)
        and 0 <= value < label.num_values
        and result.get("prediction_name") == label.values[value]
    )


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def head_results(labels: Sequence[ClassificationLabel], per_head: Sequence[np.ndarray]) -> dict[str, dict]:
    """{head name: head_result} for every head, in head order."""
    return {label.name: head_result(label, p) for label, p in zip(labels, per_head, strict=True)}
