"""The built-in demo: a synthetic task through plan & preprocess, 5-fold training, the CV report and prediction.

Run with `make demo` or `python -m universalclassifier.demo [--output demo_output]`.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from universalclassifier.console import add_common_options, run_command
from universalclassifier.errors import UserInputError

logger = logging.getLogger(__name__)

TASK_ID = 1
TASK_NAME = "Demo"
NUM_FOLDS = 5
DEMO_MARKER = ".universalclassifier_demo"  # written into the data roots the demo creates; required before it deletes
PREDICTIONS_FOLDER = "test_predictions"
EVALUATION_FOLDER = "test_evaluation"
EXPLANATIONS_FOLDER = "saliency"


@dataclass
class DemoSettings:
    """Size of the demo task and the training budget per fold."""

    num_cases: int = 40
    num_test: int = 8
    base_size: tuple[int, int, int] = (16, 48, 48)
    epochs: int = 10
    batches_per_epoch: int = 14
    val_batches_per_epoch: int = 2
    num_workers: int = 1
    label_types: bool = False  # the task with every label type, covariates and patients (synthetic.generate_task)


def demo_created_paths(output: Path) -> list[Path]:
    """Everything a demo run creates in its data root (the marker file aside): its task's folders and predictions."""
    task = f"Task{TASK_ID:03d}_{TASK_NAME}"
    return [
        output / "raw" / "nnUNet_raw_data" / task,
        output / "preprocessed" / task,
        output / "trained_models" / "nnUNet" / "3d_fullres" / task,
        output / PREDICTIONS_FOLDER,
        output / EVALUATION_FOLDER,
        output / EXPLANATIONS_FOLDER,
    ]


def prepare_output(output: Path) -> None:
    """Make `output` ready for a run: an empty or missing folder gets the demo marker; in a folder that holds the
    marker (made by an earlier demo run), only the demo's own task folders are removed. Anything else is refused,
    so that the demo never deletes data it did not create."""
    if output.exists() and not output.is_dir():
        raise UserInputError(f"--output {output} is a file; choose a folder.")
    if output.is_dir() and any(output.iterdir()):
        if not (output / DEMO_MARKER).is_file():
            raise UserInputError(
                f"{output} is not empty and is not a demo folder (it has no {DEMO_MARKER}, which the demo writes into "
                "the folders it creates); the demo deletes nothing it did not create: choose another --output, or an "
                "empty folder."
            )
        for path in demo_created_paths(output):
            if path.is_symlink() or path.is_file():
                path.unlink()
            elif path.is_dir():
                logger.info("Removing the previous demo run's %s", path)
                shutil.rmtree(path)
        return
    output.mkdir(parents=True, exist_ok=True)
    (output / DEMO_MARKER).write_text(
        "This folder was created by `python -m universalclassifier.demo`; a later demo run into it removes only "
        f"{', '.join(str(p.relative_to(output)) for p in demo_created_paths(output))}.\n"
    )


def _write_test_covariates(truth: dict, folder: Path) -> Path:
    """The test cases' covariates as the CSV uc_predict reads (case_id, age, sex; empty where unknown)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["case_id,age,sex"] + [
        f"{case},{'' if t['covariates']['age'] is None else t['covariates']['age']},{t['covariates']['sex']}"
        for case, t in sorted(truth.items())
    ]
    path = folder / "test_covariates.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def run_demo(output: Path, settings: DemoSettings, show_progress: bool = True) -> dict:
    """Run the whole pipeline on a generated task in `output`; returns the CV summary and the test predictions."""
    from universalclassifier.evaluation.external import dataset_test_cases, evaluate
    from universalclassifier.evaluation.summarize import summarize_cross_validation
    from universalclassifier.explain import explain
    from universalclassifier.inference.predict_folder import predict_folder
    from universalclassifier.paths import TaskPaths
    from universalclassifier.planning.plan_and_preprocess import plan_and_preprocess
    from universalclassifier.plans import Plans
    from universalclassifier.synthetic import generate_task
    from universalclassifier.training.trainer import ClassifierTrainer, TrainingOptions

    prepare_output(output)
    started = time.perf_counter()
    logger.info(
        "1/7 Generating a synthetic task with %d training and %d test cases", settings.num_cases, settings.num_test
    )
    task = generate_task(
        output,
        TASK_ID,
        TASK_NAME,
        num_cases=settings.num_cases,
        with_roi=True,
        base_size=settings.base_size,
        num_test=settings.num_test,
        seed=2023,
        label_types=settings.label_types,
    )
    logger.info("2/7 Planning and preprocessing")
    plan_and_preprocess(output, TASK_ID, num_workers=2, show_progress=show_progress)
    paths = TaskPaths.find(output, TASK_ID)
    options = TrainingOptions(
        max_num_epochs=settings.epochs,
        num_batches_per_epoch=settings.batches_per_epoch,
        num_val_batches_per_epoch=settings.val_batches_per_epoch,
        num_workers=settings.num_workers,
        show_progress=show_progress,
    )
    for fold in range(NUM_FOLDS):
        logger.info(
            "3/7 Training fold %d of %d (%d epochs of %d batches)",
            fold + 1,
            NUM_FOLDS,
            settings.epochs,
            settings.batches_per_epoch,
        )
        ClassifierTrainer(paths, fold, options).run_training()
    logger.info("4/7 Writing the cross-validation report")
    summary = summarize_cross_validation(paths.trainer_folder(), num_resamples=500)
    logger.info("5/7 Predicting the test cases")
    predictions = output / PREDICTIONS_FOLDER
    truth = json.loads((task / "test_targets.json").read_text())
    covariates = _write_test_covariates(truth, output / PREDICTIONS_FOLDER) if settings.label_types else None
    predict_folder(
        output / "trained_models", task / "imagesTs", predictions, task / "labelsTs", show_progress=show_progress,
        covariates_file=covariates, impute_missing_covariates=True,  # the task leaves about 10% of the ages unknown
    )
    cases = {case: json.loads((predictions / f"{case}.json").read_text()) for case in sorted(truth)}
    logger.info("6/7 Evaluating the ensemble on the labelled test cases")
    plans = Plans.load(paths.trainer_folder() / "plans.json")
    evaluation = evaluate(
        output / "trained_models", dataset_test_cases(task, plans), output / EVALUATION_FOLDER, num_resamples=500,
        impute_missing_covariates=True, show_progress=show_progress,
    )
    logger.info("7/7 Saliency maps (Grad-CAM) of the first test case")
    first = sorted(truth)[0]
    images = sorted((task / "imagesTs").glob(f"{first}_*"))
    try:
        saliency = explain(
            output / "trained_models", images, task / "labelsTs" / f"{first}.nii.gz",
            output_folder=output / EXPLANATIONS_FOLDER, method="gradcam", covariates=truth[first].get("covariates"),
            impute_missing_covariates=True,
        )
    except UserInputError as exc:  # captum (the explain extra) is not installed
        logger.warning("No saliency maps: %s", exc)
        saliency = {}
    return {
        "summary": summary,
        "truth": truth,
        "predictions": cases,
        "seconds": time.perf_counter() - started,
        "trainer_folder": paths.trainer_folder(),
        "predictions_folder": predictions,
        "evaluation": evaluation,
        "evaluation_folder": output / EVALUATION_FOLDER,
        "saliency": {head: methods["gradcam"]["png"] for head, methods in saliency.items()},
    }


def format_results(result: dict) -> str:
    """The demo's closing report: cross-validation table, test-case table and where the files are."""
    from universalclassifier.evaluation.summary_report import format_summary_table

    summary = result["summary"]
    lines = [
        f"Cross-validation ({summary['num_cases']} cases, folds {', '.join(summary['folds'])}):",
        format_summary_table(summary),
        "",
    ]
    lines.append("Test cases (true value -> prediction):")
    label_types = "lesion_volume" in next(iter(result["predictions"].values()))
    extra = f"  {'lesion_volume (ml)':<20}  high_risk" if label_types else ""
    lines.append(f"{'case':<10}  {'lesion_contrast':<26}  {'lesion_size':<24}{extra}")
    for case, predicted in result["predictions"].items():
        truth = result["truth"][case]
        sizes = ", ".join(f"{p:.2f}" for p in predicted["lesion_size"])
        row = (
            f"{case:<10}  {truth['lesion_contrast']} -> P(brighter)={predicted['lesion_contrast']:.2f}     "
            f"{truth['lesion_size']} -> [{sizes}]"
        )
        if label_types:
            volume = f"{truth['lesion_volume']:.3f} -> {predicted['lesion_volume']:.3f}"
            row += f"    {volume:<20}  {truth['high_risk']} -> P(yes)={predicted['high_risk']:.2f}"
        lines.append(row)
    evaluation = result["evaluation"]
    calibration = f"temperature-scaled: {evaluation['calibration']}" if evaluation["calibration"] else "uncalibrated"
    lines += ["", f"External evaluation of the {evaluation['num_cases']} test cases ({calibration}):"]
    lines.append(format_summary_table({"heads": evaluation["heads"]}))
    folder = result["trainer_folder"]
    lines += [
        "",
        f"Finished in {result['seconds'] / 60:.1f} min. Files:",
        f"  report:       {folder / 'cv_report.md'} (one page with the plots: {folder / 'cv_report.html'})",
        f"  per fold:     {folder}/fold_N/ (training_log.txt, progress.png, validation/)",
        f"  artifact:     {folder.parents[3]} (pass it to universalclassifier.predict)",
        f"  predictions:  {result['predictions_folder']} (one JSON per case, summary.csv)",
        f"  evaluation:   {result['evaluation_folder'] / 'evaluation_report.md'} (and .html)",
    ] + [f"  saliency:     {png}" for png in result["saliency"].values()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m universalclassifier.demo [--output DIR] [--epochs N] [--batches N] [--cases N]`."""
    defaults = DemoSettings()
    parser = argparse.ArgumentParser(prog="universalclassifier.demo", description=__doc__)
    parser.add_argument("--output", default="demo_output", help="folder for the demo data root (default demo_output)")
    parser.add_argument(
        "--cases", type=int, default=defaults.num_cases, help=f"training cases (default {defaults.num_cases})"
    )
    parser.add_argument(
        "--test_cases", type=int, default=defaults.num_test, help=f"test cases (default {defaults.num_test})"
    )
    parser.add_argument(
        "--epochs", type=int, default=defaults.epochs, help=f"epochs per fold (default {defaults.epochs})"
    )
    parser.add_argument(
        "--batches",
        type=int,
        default=defaults.batches_per_epoch,
        help=f"batches per epoch (default {defaults.batches_per_epoch})",
    )
    parser.add_argument(
        "--size", type=int, nargs=3, default=defaults.base_size, metavar=("Z", "Y", "X"), help="case size"
    )
    parser.add_argument(
        "--label_types", action="store_true",
        help="a task with every label type: ordinal, regression (lesion volume), a head with missing values, a head "
        "that needs the covariate age, and two scans per patient",
    )
    add_common_options(parser)
    args = parser.parse_args(argv)
    settings = DemoSettings(
        args.cases, args.test_cases, tuple(args.size), args.epochs, args.batches, label_types=args.label_types
    )

    def job(parsed: argparse.Namespace) -> None:
        result = run_demo(Path(parsed.output).resolve(), settings, show_progress=not parsed.quiet)
        print(format_results(result))

    return run_command(args, job)


if __name__ == "__main__":
    sys.exit(main())
