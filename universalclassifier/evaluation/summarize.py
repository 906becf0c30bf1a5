"""The cross-validation summary: pool the out-of-fold predictions of every trained fold, summarize every head and
write the summary (JSON) and its report (markdown and a self-contained HTML page)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from universalclassifier.atomic import write_json_atomic
from universalclassifier.errors import UserInputError
from universalclassifier.evaluation.pooled_metrics import summarize_head
from universalclassifier.evaluation.pooling import planned_folds, pool_folds, warn_missing_folds
from universalclassifier.evaluation.reference_comparison import reference_summary
from universalclassifier.evaluation.summary_report import cv_report
from universalclassifier.evaluation.temperature import CALIBRATION_BINS, final_checkpoint_ids, write_calibration
from universalclassifier.paths import REFERENCE_FOLDER, ArtifactLayout
from universalclassifier.plans import Plans
from universalclassifier.reporting.write import html_file_for, write_report

logger = logging.getLogger(__name__)

SUMMARY_FILE = "cv_summary.json"
REPORT_FILE = "cv_report.md"
REPORT_HTML_FILE = html_file_for(Path(REPORT_FILE)).name
PLOTS_FOLDER = "cv_plots"


def summarize_cross_validation(
    trainer_folder: Path, num_resamples: int = 1000, seed: int = 0, planned: Sequence[str] | None = None
) -> dict:
    """Pool the out-of-fold predictions of every fold_N of `trainer_folder` and write the cross-validation summary.

    Writes cv_summary.json (returned as a dict), cv_report.md, cv_report.html (the same report as one page with the
    plots embedded) and cv_plots/{roc,confusion,reliability}_<head>.png into `trainer_folder`. Per head: head_metrics
    of the pooled cases, auc_ci_95 (bootstrap, None when undefined), ece (top-label, 10 bins), the folds used, the
    value names and the plot paths relative to `trainer_folder`; nominal heads also get their temperature scaling
    (see evaluation/temperature.py), and calibration.json is written with the checkpoint ids of the folds.
    `planned`: the folds the task's splits plan (default: fold_0 .. fold_4); a warning says when fewer were pooled,
    and the report names the missing ones. `reference`: the same metrics of the radiomics reference in the sibling
    RadiomicsReference/ folder (uc_radiomics) with the paired AUC difference to the deep model, or
    {"available": false, "how_to": ...} when there is none.
    """
    trainer_folder = Path(trainer_folder)
    plans_file = ArtifactLayout(trainer_folder).plans_file
    if not plans_file.is_file():
        raise UserInputError(
            f"No trained model in {trainer_folder} (no {plans_file.name}); train (and validate) the folds first."
        )
    plans = Plans.load(plans_file)
    folds, pooled = pool_folds(trainer_folder, plans.classification_labels)
    if not pooled:
        raise UserInputError(f"The predictions.json of {', '.join(folds)} in {trainer_folder} hold no cases.")
    title = f"{plans.task_name} cross-validation"
    contributing = {fold for fold, _ in pooled.values()}
    used = [fold for fold in folds if fold in contributing]
    planned = list(planned) if planned is not None else planned_folds(None)
    warn_missing_folds(used, planned, "The cross-validation summary")
    heads = {
        head.name: summarize_head(
            head, pooled, used, title, trainer_folder, num_resamples, seed, plots_folder=PLOTS_FOLDER
        )
        for head in plans.classification_labels
    }
    summary = {
        "task": plans.task_name,
        "trainer": trainer_folder.name.partition("__")[0],
        "trainer_folder": trainer_folder.name,
        "folds": folds,
        "planned_folds": planned,
        "num_cases": len(pooled),
        "num_resamples": num_resamples,
        "seed": seed,
        "calibration_bins": CALIBRATION_BINS,
        "heads": heads,
    }
    calibration = {
        name: {
            **{key: value for key, value in head.items() if key.startswith("temperature")},
            "num_cases": head["num_cases"],
            "ece": head["ece"],
            "ece_calibrated_cross_fitted": head["ece_calibrated"],
        }
        for name, head in heads.items()
        if "temperature" in head
    }
    write_calibration(trainer_folder, plans, final_checkpoint_ids(trainer_folder, used), calibration)
    summary["reference"] = reference_summary(
        trainer_folder.parent / REFERENCE_FOLDER,
        plans.classification_labels,
        pooled,
        plans.task_name,
        num_resamples,
        seed,
    )
    write_json_atomic(trainer_folder / SUMMARY_FILE, summary)
    write_report(cv_report(summary), trainer_folder / REPORT_FILE)
    logger.info(
        "Wrote %s, %s, %s and %s/ to %s", SUMMARY_FILE, REPORT_FILE, REPORT_HTML_FILE, PLOTS_FOLDER, trainer_folder
    )
    return summary
