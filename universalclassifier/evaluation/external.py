"""External evaluation: predict a labelled test set with the ensemble and report it as uc_summarize reports CV.

The labelled cases come from a folder of images (plus ROIs, a labels CSV and optional covariates CSV) or from the
task's own test set (`dataset.json` `test` entries carrying their values, or the synthetic generator's
`test_targets.json`). The report (`evaluation_summary.json`, `evaluation_report.md`, the same as one page
`evaluation_report.html`, `plots/`) has per head the metrics with bootstrap CIs, the plots, and the ten
worst-predicted cases; with a second model (`compare`) a paired comparison: DeLong's test for binary heads, a
paired bootstrap of the AUC (or the MAE) difference otherwise.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from universalclassifier.atomic import write_json_atomic
from universalclassifier.covariates import CovariateValue, read_covariates_csv
from universalclassifier.dataset.image_io import split_extension
from universalclassifier.errors import UserInputError
from universalclassifier.evaluation.bootstrap import INTERVAL_DESCRIPTION, bootstrap_auc_difference
from universalclassifier.evaluation.delong import delong_test
from universalclassifier.evaluation.graded_metrics import bootstrap_mae_difference
from universalclassifier.evaluation.pooled_metrics import summarize_head
from universalclassifier.evaluation.pooling import Pooled, planned_folds, pooled_arrays, warn_missing_folds
from universalclassifier.evaluation.summary_report import folds_sentence, head_section, metric_tables, signed_interval
from universalclassifier.inference.predict import get_predictor
from universalclassifier.inference.predict_folder import find_cases, find_roi
from universalclassifier.plans import ClassificationLabel, Plans
from universalclassifier.reporting.document import Block, Bullets, Paragraph, Report, Section, Table
from universalclassifier.reporting.write import html_file_for, write_report

logger = logging.getLogger(__name__)

SUMMARY_FILE = "evaluation_summary.json"
REPORT_FILE = "evaluation_report.md"
REPORT_HTML_FILE = html_file_for(Path(REPORT_FILE)).name
PLOTS_FOLDER = "plots"
NUM_WORST = 10
TEST_TARGETS_FILE = "test_targets.json"


@dataclass(frozen=True)
class LabelledCase:
    """A test case: its image files (modality order), ROI, known values per head (None: unknown) and covariates."""

    images: list[Path]
    roi: Path | None
    targets: dict[str, int | float | None]
    covariates: dict[str, CovariateValue] | None = field(default=None)


def _target(head: ClassificationLabel, text: object, source: str) -> int | float | None:
    if text is None or text == "":
        return None
    try:
        value = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        value = float("nan")
    if head.is_regression and np.isfinite(value):
        return value
    if not head.is_regression and value.is_integer() and 0 <= value < head.num_values:
        return int(value)
    expected = "a number" if head.is_regression else f"one of {list(range(head.num_values))}"
    raise UserInputError(f"{source}: '{head.name}' = {text!r} is not {expected} (leave it empty when unknown).")


def read_labels_csv(path: Path, plans: Plans) -> dict[str, dict[str, int | float | None]]:
    """{case_id: {head: value}} from a CSV with a `case_id` column and one column per head (empty: unknown)."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserInputError(f"Cannot read the labels file {path} ({exc}).") from exc
    missing = [c for c in ["case_id", *plans.head_names] if not rows or c not in rows[0]]
    if missing:
        raise UserInputError(f"{path} needs the columns case_id and {plans.head_names}; missing {missing}.")
    return {
        row["case_id"]: {
            h.name: _target(h, row[h.name], f"{path}, case {row['case_id']}") for h in plans.classification_labels
        }
        for row in rows
    }


def folder_cases(
    input_folder: Path, roi_folder: Path | None, labels_csv: Path, plans: Plans, covariates_csv: Path | None = None
) -> dict[str, LabelledCase]:
    """The labelled cases of a flat image folder (as uc_predict reads it) with their labels and covariates."""
    labels = read_labels_csv(labels_csv, plans)
    images = find_cases(input_folder, plans.num_modalities)
    unlabelled = sorted(set(images) - set(labels))
    if unlabelled:
        raise UserInputError(f"{labels_csv} has no row for the case(s) {unlabelled[:10]} of {input_folder}.")
    covariates = {} if covariates_csv is None else read_covariates_csv(covariates_csv, plans.covariates)
    return {
        case: LabelledCase(
            files, None if roi_folder is None else find_roi(roi_folder, case), labels[case], covariates.get(case)
        )
        for case, files in sorted(images.items())
    }


def dataset_test_cases(task_folder: Path, plans: Plans) -> dict[str, LabelledCase]:
    """The labelled test cases of a raw task: `dataset.json` `test` entries with their values (objects like training
    entries), or entries given as image paths with their values in `test_targets.json`."""
    dataset = json.loads((task_folder / "dataset.json").read_text())
    entries = dataset.get("test") or []
    stored = task_folder / TEST_TARGETS_FILE
    targets_file = json.loads(stored.read_text()) if stored.is_file() else {}
    cases = {}
    for entry in entries:
        item = entry if isinstance(entry, dict) else {"image": entry}
        image = str(item.get("image", ""))
        case_id, extension = split_extension(Path(image).name)
        values = item if any(h in item for h in plans.head_names) else targets_file.get(case_id)
        if values is None:
            raise UserInputError(
                f"Test case {case_id} of {task_folder / 'dataset.json'} has no values: give them in its test entry or "
                f"in {stored}."
            )
        folder = (task_folder / image).parent
        images = [folder / f"{case_id}_{m:04d}{extension}" for m in range(plans.num_modalities)]
        roi = item.get("label") or (f"./labelsTs/{case_id}{extension}" if plans.uses_roi else None)
        source = f"{task_folder / 'dataset.json'} test case {case_id}"
        cases[case_id] = LabelledCase(
            images,
            None if roi is None else task_folder / roi,
            {h.name: _target(h, values.get(h.name), source) for h in plans.classification_labels},
            values.get("covariates"),
        )
    if not cases:
        raise UserInputError(f"{task_folder / 'dataset.json'} lists no test cases; use -i, -s and --labels instead.")
    return cases


@dataclass(frozen=True)
class EnsemblePredictions:
    """A model's predictions of the labelled cases and what made them: its trainer, folds and calibration."""

    plans: Plans
    trainer_folder: Path
    folds: list[str]
    calibration: str | None  # the calibration applied, as `Calibration.describe` says it; None without
    pooled: Pooled  # as the CV summary pools predictions (see `_pooled`)

    def describe(self) -> dict:
        """Trainer, folds and calibration as the summary stores them."""
        return {
            "trainer": self.trainer_folder.name.partition("__")[0],
            "trainer_folder": str(self.trainer_folder),
            "folds": self.folds,
            "calibration": self.calibration,
        }


def _predict_all(
    artifact: Path,
    cases: dict[str, LabelledCase],
    task,
    folds,
    tta: bool,
    calibrate: bool,
    impute: bool,
    show_progress: bool,
) -> EnsemblePredictions:
    predictor = get_predictor(artifact, folds, task)
    for case_id, case in cases.items():  # every case's covariates are checked before the first prediction
        try:
            predictor.covariate_input(case.covariates, impute_missing=impute)
        except UserInputError as exc:
            raise UserInputError(f"case {case_id}: {exc}") from None
    outputs = {}
    for case_id, case in tqdm(cases.items(), desc="Evaluating", unit="case", disable=not show_progress):
        outputs[case_id] = predictor.predict_per_head(
            case.images,
            case.roi,
            tta=tta,
            case_id=case_id,
            covariates=case.covariates,
            calibrate=calibrate,
            impute_missing_covariates=impute,
        )
    calibration = predictor.calibration(calibrate)
    return EnsemblePredictions(
        predictor.plans,
        predictor.trainer_folder,
        [folder.name for folder in predictor.fold_folders],
        None if calibration is None else calibration.describe(),
        _pooled(predictor.plans, cases, outputs),
    )


def _pooled(
    plans: Plans, cases: dict[str, LabelledCase], outputs: dict[str, list[np.ndarray]]
) -> Pooled:
    """The prediction set in the form the CV summary pools: {case: ("ensemble", {head: (target, prediction)})}."""
    return {
        case_id: (
            "ensemble",
            {
                head.name: (case.targets[head.name], [float(v) for v in prediction])
                for head, prediction in zip(plans.classification_labels, outputs[case_id], strict=True)
            },
        )
        for case_id, case in cases.items()
    }


def _worst_cases(head: ClassificationLabel, pooled: Pooled) -> list[dict]:
    """The NUM_WORST cases predicted worst: lowest probability of the true value, or largest absolute error."""
    rows = []
    for case_id, (_, per_head) in pooled.items():
        target, prediction = per_head[head.name]
        if target is None:
            continue
        if head.is_regression:
            rows.append(
                {
                    "case_id": case_id,
                    "target": target,
                    "prediction": prediction[0],
                    "error": abs(prediction[0] - target),
                }
            )
        else:
            rows.append(
                {"case_id": case_id, "target": target, "probabilities": prediction, "p_true": prediction[int(target)]}
            )
    key = (lambda r: -r["error"]) if head.is_regression else (lambda r: r["p_true"])
    return sorted(rows, key=key)[:NUM_WORST]


def _comparison(head: ClassificationLabel, pooled: dict, other: dict, num_resamples: int, seed: int) -> dict:
    """This model minus the other on the cases with a known target of this head."""
    cases = [c for c in pooled if pooled[c][1][head.name][0] is not None]
    targets, mine = pooled_arrays(pooled, head.name, cases)
    theirs = pooled_arrays(other, head.name, cases)[1]
    if head.is_regression:
        mae_difference, mae_low, mae_high = bootstrap_mae_difference(
            np.array(targets, dtype=np.float64), mine[:, 0], theirs[:, 0], num_resamples=num_resamples, seed=seed
        )
        return {
            "metric": "MAE",
            "difference": mae_difference,
            "ci_95": [mae_low, mae_high],
            "test": "paired bootstrap",
            "num_cases": len(cases),
        }
    y = np.array(targets, dtype=np.int64)
    difference, low, high = bootstrap_auc_difference(
        y, mine, theirs, num_resamples=num_resamples, seed=seed, ordinal=head.ordinal
    )
    result = {
        "metric": "AUC",
        "difference": difference,
        "ci_95": [low, high],
        "test": "paired bootstrap",
        "num_cases": len(cases),
    }
    if head.num_values == 2 and head.type == "nominal":
        delong = delong_test(y, mine[:, 1], theirs[:, 1])
        result.update(test="DeLong", p_value=delong["p_value"], standard_error=delong["standard_error"])
    return result


def evaluate(
    artifact: Path,
    cases: dict[str, LabelledCase],
    output_folder: Path,
    *,
    task: str | int | None = None,
    folds: list[int | str] | None = None,
    tta: bool = False,
    calibrate: bool = True,
    impute_missing_covariates: bool = False,
    compare: Path | None = None,
    num_resamples: int = 1000,
    seed: int = 0,
    show_progress: bool = True,
    planned: Sequence[str] | None = None,
) -> dict:
    """Predict `cases` with the ensemble in `artifact` (and `compare`), write the report into `output_folder`.

    `planned`: the folds the task's splits plan (default fold_0 .. fold_4); when every trained fold is used
    (`folds` None) and fewer than planned are trained, a warning says so. The report names the trainer, the folds
    and the calibration applied.
    """
    mine = _predict_all(artifact, cases, task, folds, tta, calibrate, impute_missing_covariates, show_progress)
    plans, pooled = mine.plans, mine.pooled
    expected = mine.folds  # the folds asked for, or `all` alone
    if folds is None and mine.folds != ["all"]:
        expected = planned_folds(None) if planned is None else list(planned)
        warn_missing_folds(mine.folds, expected, "The evaluated ensemble")
    output_folder.mkdir(parents=True, exist_ok=True)
    title = f"{plans.task_name} external evaluation"
    heads = {
        head.name: {
            **summarize_head(
                head,
                pooled,
                ["ensemble"],
                title,
                output_folder,
                num_resamples,
                seed,
                plots_folder=PLOTS_FOLDER,
                fit_calibration=False,
            ),
            "worst_cases": _worst_cases(head, pooled),
        }
        for head in plans.classification_labels
    }
    summary: dict = {
        "task": plans.task_name,
        "artifact": str(artifact),
        **mine.describe(),
        "planned_folds": expected,
        "num_cases": len(cases),
        "tta": tta,
        "calibrated": mine.calibration is not None,
        "num_resamples": num_resamples,
        "seed": seed,
        "heads": heads,
    }
    if compare is not None:
        other = _predict_all(compare, cases, task, None, tta, calibrate, impute_missing_covariates, show_progress)
        if other.plans.head_names != plans.head_names:
            raise UserInputError(f"{compare} predicts the heads {other.plans.head_names}, not {plans.head_names}.")
        summary["comparison"] = {
            "other_artifact": str(compare),
            **other.describe(),
            "heads": {
                h.name: _comparison(h, pooled, other.pooled, num_resamples, seed) for h in plans.classification_labels
            },
        }
    write_json_atomic(output_folder / SUMMARY_FILE, summary)
    write_report(_report(summary), output_folder / REPORT_FILE)
    logger.info(
        "Wrote %s, %s, %s and %s/ to %s", SUMMARY_FILE, REPORT_FILE, REPORT_HTML_FILE, PLOTS_FOLDER, output_folder
    )
    return summary


def _ensemble_sentence(description: dict) -> str:
    """E.g. "2 of 5 planned folds (fold_0, fold_1; **missing: ...**) of ClassifierTrainer (`.../ClassifierTrainer__
    ...`), temperature-scaled (lesion_contrast T = 1.640)"."""
    calibration = description["calibration"]
    folds = description["folds"]
    return (
        f"{folds_sentence(folds, description.get('planned_folds', folds))} of {description['trainer']} "
        f"(`{description['trainer_folder']}`), "
        + ("without calibration" if calibration is None else f"temperature-scaled ({calibration})")
    )


def _comparison_section(comparison: dict) -> Section:
    """The paired comparison with the other model, one row per head."""
    rows = []
    for name, result in comparison["heads"].items():
        p_value = result.get("p_value")
        rows.append((
            name,
            result["metric"],
            ("n/a" if result["difference"] is None else f"{result['difference']:+.3f}")
            + signed_interval(*result["ci_95"]),
            result["test"],
            "n/a" if p_value is None else f"{p_value:.4f}",
        ))
    return Section(f"Compared with `{comparison['other_artifact']}`", [
        Paragraph(f"The other model: the ensemble of {_ensemble_sentence(comparison)}."),
        Table(("Head", "Metric", "This minus other [95% CI]", "Test", "p-value"), tuple(rows)),
    ])


def _worst_cases_blocks(name: str, head: dict) -> list[Block]:
    """The worst-predicted cases of a head, as a list (nothing without a case of known value)."""
    items = []
    for row in head["worst_cases"]:
        shown = (
            f"prediction {row['prediction']:.4g}, error {row['error']:.4g}"
            if "error" in row
            else f"p(true value) {row['p_true']:.3f}"
        )
        items.append(f"{row['case_id']}: true {row['target']}, {shown}")
    return [Paragraph(f"Worst-predicted cases of {name}:"), Bullets(tuple(items))] if items else []


def _report(summary: dict) -> Report:
    """The evaluation report: the ensemble, the metric tables, the comparison, then per head its section and its
    worst-predicted cases."""
    introduction = Section(None, [
        Paragraph(
            f"{summary['num_cases']} labelled case(s) predicted by the ensemble of {_ensemble_sentence(summary)}"
            f"{', with mirroring TTA' if summary['tta'] else ''}; 95% CIs: {INTERVAL_DESCRIPTION}, "
            f"{summary['num_resamples']} resamples."
        ),
        *metric_tables(summary["heads"]),
    ])
    report = Report(f"External evaluation: {summary['task']}, {summary['trainer']}", [introduction])
    if summary.get("comparison"):
        report.sections.append(_comparison_section(summary["comparison"]))
    for name, head in summary["heads"].items():
        section = head_section(name, head)
        section.blocks += _worst_cases_blocks(name, head)
        report.sections.append(section)
    return report
