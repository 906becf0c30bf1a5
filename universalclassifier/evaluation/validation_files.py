"""A fold's `validation/` folder: per-case predictions (JSON and CSV) and the per-head summary, for any model."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from universalclassifier.atomic import write_atomic, write_json_atomic
from universalclassifier.evaluation.metrics import summarize_heads
from universalclassifier.paths import ArtifactLayout


def write_validation_files(
    folder: Path,
    case_ids: Sequence[str],
    head_sizes: Mapping[str, int],
    targets: Mapping[str, Sequence[int]],
    probabilities: Mapping[str, np.ndarray],
    summary_fields: Mapping[str, object],
) -> dict:
    """Write predictions.json, predictions.csv and summary.json into `folder` and return the per-head summary.

    `head_sizes` maps each head, in order, to its number of values; `targets[head][n]` and `probabilities[head][n]`
    belong to `case_ids[n]`. `summary_fields` (e.g. the fold) go into summary.json beside "heads".
    """
    heads = list(head_sizes)
    folder.mkdir(parents=True, exist_ok=True)
    per_case = {
        case_id: {
            head: {"target": int(targets[head][n]), "probabilities": probabilities[head][n].astype(float).tolist()}
            for head in heads
        }
        for n, case_id in enumerate(case_ids)
    }
    write_json_atomic(folder / ArtifactLayout.PREDICTIONS_JSON, per_case)
    header = ["case_id"]
    for head, size in head_sizes.items():
        header += [f"{head}_target"] + [f"{head}_p{v}" for v in range(size)]
    rows = [header]
    for n, case_id in enumerate(case_ids):
        row: list = [case_id]
        for head in heads:
            row += [targets[head][n]] + [f"{p:.6f}" for p in probabilities[head][n]]
        rows.append(row)
    write_atomic(folder / ArtifactLayout.PREDICTIONS_CSV, lambda handle: csv.writer(handle).writerows(rows))
    summary = summarize_heads(heads, list(head_sizes.values()), targets, probabilities)
    write_json_atomic(folder / ArtifactLayout.SUMMARY, {**summary_fields, "heads": summary})
    return summary
