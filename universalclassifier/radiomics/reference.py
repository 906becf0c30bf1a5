"""The radiomics reference of a task: cached features, the deep model's folds, out-of-fold predictions and metrics.

`uc_radiomics DATA -t ID` runs `run_radiomics_reference`; `reference_scores` is the same model for in-process use
(benchmarks). Outputs, next to the deep model's trainer folder so that uc_summarize can put both side by side:

    DATA/preprocessed/TaskXXX_Name/radiomics/features.csv (+ features.json: settings and input signatures)
    DATA/trained_models/nnUNet/3d_fullres/TaskXXX_Name/RadiomicsReference/
        radiomics_summary.json
        fold_N/validation/predictions.csv  predictions.json  summary.json   (the deep trainer's formats)
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from universalclassifier.atomic import write_atomic, write_json_atomic
from universalclassifier.checks import checked_int
from universalclassifier.dataset.validation import CaseFiles, ValidatedTask, validate_task
from universalclassifier.errors import UserInputError
from universalclassifier.evaluation.head_summary import headline, summarize_heads
from universalclassifier.evaluation.reference_comparison import REFERENCE_LABEL
from universalclassifier.evaluation.validation_files import write_validation_files
from universalclassifier.parallel import map_with_progress
from universalclassifier.paths import ArtifactLayout, TaskPaths, fold_folder_name
from universalclassifier.plans import ClassificationLabel
from universalclassifier.radiomics.features import case_features, feature_settings, require_mirp
from universalclassifier.radiomics.model import (
    ClassificationHead,
    HeadModel,
    RegressionHead,
    fit_reference,
    predict_reference,
)
from universalclassifier.training.splits import fold_cases, load_or_create_splits

logger = logging.getLogger(__name__)

FEATURES_FILE = "features.csv"
FEATURES_METADATA_FILE = "features.json"
SUMMARY_FILE = "radiomics_summary.json"


@dataclass
class FeatureTable:
    """Radiomics features of several cases: one row per case id, NaN where a feature is missing for a case."""

    case_ids: list[str]
    columns: list[str]
    values: np.ndarray

    def rows(self, case_ids: Sequence[str]) -> np.ndarray:
        """The rows of `case_ids`, in that order."""
        index = {case_id: i for i, case_id in enumerate(self.case_ids)}
        return self.values[[index[c] for c in case_ids]]


def feature_table(rows: Mapping[str, Mapping[str, float]]) -> FeatureTable:
    """A table of {case id: case_features(...)}: rows sorted by case id, columns in first-seen order, absent NaN."""
    case_ids = sorted(rows)
    columns = list(dict.fromkeys(name for case_id in case_ids for name in rows[case_id]))
    values = np.array(
        [[rows[c].get(name, math.nan) for name in columns] for c in case_ids], dtype=np.float64
    ).reshape(len(case_ids), len(columns))
    return FeatureTable(case_ids, columns, values)


def compute_features(
    cases: Sequence[tuple[Sequence[Path], Path | None]], num_workers: int = 1, show_progress: bool = True
) -> list[dict[str, float]]:
    """`case_features` of every (image files, ROI file or None) case, in input order, over `num_workers` processes."""
    return list(
        map_with_progress(
            case_features,
            [([Path(p) for p in images], None if roi is None else Path(roi)) for images, roi in cases],
            num_workers,
            "Radiomics features",
            show_progress,
        )
    )


def reference_scores(
    train_cases: Sequence[tuple[Sequence[Path], Path | None]],
    train_targets: Mapping[str, Sequence[int | float | None]],
    test_cases: Sequence[tuple[Sequence[Path], Path | None]],
    num_values: Mapping[str, int],
    num_workers: int = 1,
    seed: int = 12345,
    show_progress: bool = False,
    *,
    regression_heads: Collection[str] = (),
) -> dict[str, np.ndarray]:
    """Fit the radiomics reference on the training cases and return, per head, the test predictions.

    A case is (image files, one per modality in dataset.json order; ROI label map or None). `train_targets` maps
    each head to one value per training case (None: unknown, left out of that head's fit): an integer value of a
    classification head, whose number of values is `num_values[head]`, or a float of a head in `regression_heads`.
    Returns {head: (number of test cases, num_values[head]) probabilities, or (number of test cases, 1) predicted
    values of a regression head}, rows in `test_cases` order.
    """
    require_mirp()
    cases = list(train_cases) + list(test_cases)
    computed = compute_features(cases, num_workers, show_progress)
    table = feature_table({f"{i:09d}": row for i, row in enumerate(computed)})  # zero-padded keys keep the input order
    models = fit_reference(
        table.values[: len(train_cases)], train_targets, num_values, seed, regression_heads=regression_heads
    )
    return predict_reference(models, table.values[len(train_cases):])


def _signature(case: CaseFiles) -> list[list]:
    """Name, size and modification time of a case's input files: a changed file invalidates its cached features."""
    files = list(case.images) + ([case.roi] if case.roi is not None else [])
    return [[path.name, path.stat().st_size, path.stat().st_mtime_ns] for path in files]


def _write_features(folder: Path, table: FeatureTable, metadata: dict) -> None:
    rows = [["case_id"] + table.columns]
    rows += [
        [case_id] + [repr(float(v)) for v in row] for case_id, row in zip(table.case_ids, table.values, strict=True)
    ]
    write_atomic(folder / FEATURES_FILE, lambda handle: csv.writer(handle).writerows(rows))
    write_json_atomic(folder / FEATURES_METADATA_FILE, metadata)


def _read_cached_rows(folder: Path, settings: dict, signatures: Mapping[str, list]) -> dict[str, dict[str, float]]:
    """Cached feature rows still valid: same settings and unchanged input files; {} when there is no usable cache."""
    try:
        metadata = json.loads((folder / FEATURES_METADATA_FILE).read_text())
        with open(folder / FEATURES_FILE, newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader)
            rows = {line[0]: dict(zip(header[1:], map(float, line[1:]), strict=False)) for line in reader}
    except (OSError, ValueError, StopIteration, IndexError) as exc:
        if (folder / FEATURES_FILE).exists():
            logger.warning("Cannot read the cached radiomics features in %s (%s); computing them again.", folder, exc)
        return {}
    if metadata.get("settings") != settings:
        logger.info("The cached radiomics features in %s were made with other settings; computing them again.", folder)
        return {}
    cached = metadata.get("cases", {})
    return {c: row for c, row in rows.items() if c in signatures and cached.get(c) == signatures[c]}


def cached_feature_table(
    paths: TaskPaths, task: ValidatedTask, num_workers: int = 1, show_progress: bool = True
) -> FeatureTable:
    """Features of every training case: reused from DATA/preprocessed/TaskXXX/radiomics/ where still valid."""
    folder = paths.radiomics_features_folder
    settings = feature_settings()
    signatures = {case.case_id: _signature(case) for case in task.cases}
    rows = _read_cached_rows(folder, settings, signatures)
    missing = [case for case in task.cases if case.case_id not in rows]
    if rows:
        logger.info("Reusing the cached radiomics features of %d case(s) from %s.", len(rows), folder / FEATURES_FILE)
    if missing:
        logger.info("Computing radiomics features of %d case(s) with %d worker(s).", len(missing), num_workers)
        computed = compute_features([(case.images, case.roi) for case in missing], num_workers, show_progress)
        rows.update({case.case_id: row for case, row in zip(missing, computed, strict=True)})
    table = feature_table(rows)
    _write_features(folder, table, {"settings": settings, "cases": signatures})
    return table


def _fit_note(model: HeadModel, num_training_cases: int) -> str:
    """The regularisation chosen for a head, for the log ("C=1.0", "alpha=10.0"), and its number of training values
    where some training cases had no value for it."""
    note = f"C={model.c}" if isinstance(model, ClassificationHead) else f"alpha={model.alpha}"
    return note if model.num_cases == num_training_cases else f"{note}, {model.num_cases} known training values"


def _check_known_training_values(
    fold: int, train: Sequence[str], targets_of: Mapping[str, Mapping[str, int | float | None]],
    heads: Sequence[ClassificationLabel],
) -> None:
    """Every head needs a known value in a fold's training cases: its model is fitted on those only."""
    empty = [head.name for head in heads if all(targets_of[c][head.name] is None for c in train)]
    if empty:
        raise UserInputError(
            f"Fold {fold}: no training case has a value for head(s) {empty}, so the reference cannot be fitted; "
            "label more cases for them or leave those heads out of a copy of the task."
        )


def run_radiomics_reference(
    data_root: Path | str,
    task: str | int,
    folds: Sequence[int] | None = None,
    num_workers: int = 2,
    show_progress: bool = True,
    seed: int = 12345,
) -> dict:
    """Cross-validate the radiomics reference of a task on the deep model's folds and write its folder.

    Validates the raw task like plan & preprocess, computes (or reuses) the features of every training case, reads
    or creates DATA/preprocessed/TaskXXX/splits_final.json exactly as training does, fits each head on the fold's
    training cases with a known value for it (classification heads: logistic regression; regression heads: ridge
    regression) and predicts every validation case. Returns the pooled out-of-fold summary written to
    radiomics_summary.json.
    """
    require_mirp()
    checked_int(num_workers, "--num_workers", 1, UserInputError)
    paths = TaskPaths.find(data_root, task)
    logger.info("Radiomics reference of %s from %s", paths.task_name, paths.raw)
    validated = validate_task(paths.raw, num_workers, show_progress)
    heads = validated.description.classification_labels
    if validated.description.covariates:
        logger.info(
            "The radiomics reference uses image features only; the covariates %s are not used.",
            [covariate.name for covariate in validated.description.covariates],
        )
    table = cached_feature_table(paths, validated, num_workers, show_progress)

    case_ids = sorted(case.case_id for case in validated.cases)
    targets_of = {case.case_id: case.targets for case in validated.cases}
    per_head = {head.name: [targets_of[c][head.name] for c in case_ids] for head in heads}
    regression = [head.name for head in heads if head.is_regression]
    groups = {case.case_id: case.group for case in validated.cases if case.group is not None}
    splits = load_or_create_splits(paths.splits_file, case_ids, per_head, regression_labels=regression, groups=groups)
    chosen = list(range(len(splits))) if folds is None else sorted(set(folds))
    fold_sets = [fold_cases(splits, fold, case_ids) for fold in chosen]  # refuses unknown folds before any fitting
    num_values = {head.name: head.num_values for head in heads}

    out = paths.reference_folder()
    pooled: dict[str, dict[str, np.ndarray]] = {}  # a case validated in two folds keeps its first prediction
    chosen_c: dict[str, dict[str, float | None]] = {}
    chosen_alpha: dict[str, dict[str, float | None]] = {}
    for fold, (train, val) in zip(chosen, fold_sets, strict=True):
        if not train or not val:
            raise UserInputError(
                f"Fold {fold} of {paths.splits_file} has {len(train)} training and {len(val)} validation case(s); "
                "every fold needs both: fix the file or delete it to have it recreated."
            )
        _check_known_training_values(fold, train, targets_of, heads)
        train_targets = {name: [targets_of[c][name] for c in train] for name in num_values}
        val_targets = {name: [targets_of[c][name] for c in val] for name in num_values}
        models = fit_reference(table.rows(train), train_targets, num_values, seed, regression_heads=regression)
        predictions = predict_reference(models, table.rows(val))
        validation = ArtifactLayout(out).validation_folder(fold)
        summary = write_validation_files(validation, val, heads, val_targets, predictions, {"fold": str(fold)})
        fold_name = fold_folder_name(fold)
        chosen_c[fold_name] = {n: m.c for n, m in models.items() if isinstance(m, ClassificationHead)}
        chosen_alpha[fold_name] = {n: m.alpha for n, m in models.items() if isinstance(m, RegressionHead)}
        logger.info(
            "Fold %d: %d training, %d validation cases; %s",
            fold, len(train), len(val),
            "; ".join(
                f"{head.name} {headline(head, summary[head.name])} ({_fit_note(models[head.name], len(train))})"
                for head in heads
            ),
        )
        for n, case_id in enumerate(val):
            pooled.setdefault(case_id, {name: predictions[name][n] for name in num_values})

    pooled_ids = list(pooled)
    metrics = summarize_heads(
        heads,
        {name: [targets_of[c][name] for c in pooled_ids] for name in num_values},
        {name: np.array([pooled[c][name] for c in pooled_ids]) for name in num_values},
    )
    result = {
        "task": paths.task_name,
        "model": REFERENCE_LABEL,
        "folds": [fold_folder_name(fold) for fold in chosen],
        "num_cases": len(pooled_ids),
        "num_features": len(table.columns),
        "features": feature_settings(),
        "chosen_C": chosen_c,
        "chosen_alpha": chosen_alpha,
        "heads": metrics,
    }
    write_json_atomic(out / SUMMARY_FILE, result)
    logger.info(
        "Radiomics reference, %d out-of-fold case(s) over %d fold(s): %s. Written to %s; run uc_summarize to compare "
        "it with the deep model.",
        len(pooled_ids), len(chosen), "; ".join(f"{head.name} {headline(head, metrics[head.name])}" for head in heads),
        out,
    )
    return result
