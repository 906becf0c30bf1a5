"""A fold's `validation/` folder: per-case predictions (JSON and CSV) and the per-head summary, for any model."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from universalclassifier.atomic import write_atomic, write_json_atomic
from universalclassifier.evaluation.head_summary import summarize_heads
from universalclassifier.inference.outputs import head_result, prediction_cells, prediction_columns
from universalclassifier.paths import ArtifactLayout
from universalclassifier.plans import ClassificationLabel


def prediction_entry(label: ClassificationLabel, prediction: np.ndarray) -> dict:
    """A head's prediction as predictions.json stores it: {"probabilities": [...]} or {"prediction": value}."""
    if label.is_regression:
        return {"prediction": float(prediction[0])}
    return {"probabilities": prediction.astype(float).tolist()}


def write_validation_files(
    folder: Path,
    case_ids: Sequence[str],
    labels: Sequence[ClassificationLabel],
    targets: Mapping[str, Sequence[int | float | None]],
    predictions: Mapping[str, np.ndarray],
    summary_fields: Mapping[str, object],
) -> dict:
    """Write predictions.json, predictions.csv and summary.json into `folder` and return the per-head summary.

    predictions.csv has per head `<head>_target` and the columns of `inference.outputs.prediction_columns` (the
    probabilities, the predicted value and its name), as uc_predict's summary.csv.

    `targets[head][n]` (None: unknown) and `predictions[head][n]` (the value probabilities, or the predicted value of
    a regression head) belong to `case_ids[n]`. `summary_fields` (e.g. the fold) go into summary.json beside "heads".
    """
    folder.mkdir(parents=True, exist_ok=True)
    per_case = {
        case_id: {
            label.name: {"target": targets[label.name][n], **prediction_entry(label, predictions[label.name][n])}
            for label in labels
        }
        for n, case_id in enumerate(case_ids)
    }
    write_json_atomic(folder / ArtifactLayout.PREDICTIONS_JSON, per_case)
    columns = [column for label in labels for column in [f"{label.name}_target", *prediction_columns(label)]]
    rows: list[list] = [["case_id", *columns]]
    for n, case_id in enumerate(case_ids):
        row: list = [case_id]
        for label in labels:
            target = targets[label.name][n]
            result = head_result(label, np.asarray(predictions[label.name][n]))
            row += ["" if target is None else target, *prediction_cells(label, result)]
        rows.append(row)
    write_atomic(folder / ArtifactLayout.PREDICTIONS_CSV, lambda handle: csv.writer(handle).writerows(rows))
    summary = summarize_heads(labels, targets, predictions)
    write_json_atomic(folder / ArtifactLayout.SUMMARY, {**summary_fields, "heads": summary})
    return summary
